"""Run the chapters under other numerical environments: the book's outputs must not depend on them.

A reader's machine differs from ours in its BLAS kernel, its SIMD instructions and its thread
count, and each changes the last bits of floating-point results. A stored output or glued number
that moves with those bits is a defect (README, "Outputs that hold on every machine"). This
module makes such environments on one machine:

``python book/_ext/reproducibility.py nbval [pytest args]``
    Runs nbval under the *perturbed* environment (another OpenBLAS kernel, numpy's SIMD dispatch
    restricted to the baseline, two BLAS threads), after checking and printing that each setting
    took effect. ``make reproducible`` calls it; ``make test`` includes it.

``python book/_ext/reproducibility.py survey [chapter ...]``
    Executes the chapters under every environment of :data:`SURVEY` and prints each code cell
    whose outputs differ between environments (the raw text, so that a fragile digit shows
    before it fails someone else's run). An author runs it on a chapter before committing it.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg"]

# numpy >= 2.4 disables SIMD dispatch only by group names (X86_V3, X86_V4) and the AVX-512
# extras; the baseline (X86_V2 on x86-64, ASIMD on arm64) always stays.
X86_SIMD_OFF = "X86_V4 X86_V3 AVX512_ICL AVX512_SPR"
ARM_SIMD_OFF = "ASIMDHP ASIMDDP ASIMDFHM SVE"

REFERENCE = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _probe(env: dict[str, str]) -> dict:
    """What numpy and OpenBLAS report under ``env``: the kernel, the threads, the SIMD features."""
    code = ("import json, numpy, threadpoolctl\n"
            "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
            "blas = [i for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']\n"
            "print(json.dumps({'architecture': blas[0].get('architecture') if blas else None,\n"
            "                  'threads': blas[0]['num_threads'] if blas else None,\n"
            "                  'simd': sorted(k for k, v in f.items() if v)}))\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def perturbed() -> dict[str, str]:
    """Another numerical environment on this machine: generic BLAS kernel, baseline SIMD, 2 threads."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        native = _probe(REFERENCE)["architecture"]
        # Sandybridge: AVX without FMA, so products round differently from every FMA kernel.
        kernel = "Nehalem" if native == "Sandybridge" else "Sandybridge"
        simd_off = X86_SIMD_OFF
    elif machine in ("aarch64", "arm64"):
        kernel, simd_off = "ARMV8", ARM_SIMD_OFF
    else:
        raise SystemExit(f"no perturbed environment is defined for {machine}")
    return {"OPENBLAS_CORETYPE": kernel, "NPY_DISABLE_CPU_FEATURES": simd_off,
            "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


def check_perturbed(env: dict[str, str]) -> str:
    """Verify that every setting of ``env`` took effect; return a one-line report of both sides."""
    ref, new = _probe(REFERENCE), _probe(env)
    problems = []
    if new["architecture"] is None or new["architecture"].lower() != env["OPENBLAS_CORETYPE"].lower():
        problems.append(f"OpenBLAS kernel is {new['architecture']}, not {env['OPENBLAS_CORETYPE']}")
    if new["architecture"] == ref["architecture"]:
        problems.append("the OpenBLAS kernel is the same as the reference one")
    if new["threads"] != int(env["OPENBLAS_NUM_THREADS"]):
        problems.append(f"OpenBLAS uses {new['threads']} threads, not {env['OPENBLAS_NUM_THREADS']}")
    if set(new["simd"]) == set(ref["simd"]):
        problems.append("numpy's SIMD dispatch is unchanged (NPY_DISABLE_CPU_FEATURES had no effect)")
    if problems:
        raise SystemExit("the perturbed environment did not take effect: " + "; ".join(problems))
    dropped = sorted(set(ref["simd"]) - set(new["simd"]))
    return (f"reference: OpenBLAS {ref['architecture']}, {ref['threads']} thread(s); "
            f"perturbed: OpenBLAS {new['architecture']}, {new['threads']} thread(s), "
            f"numpy SIMD without {', '.join(dropped)}")


def survey_environments() -> dict[str, dict[str, str]]:
    """The environments a survey compares: the reference, the perturbed one and three more."""
    envs = {"reference": REFERENCE, "perturbed": perturbed()}
    if platform.machine().lower() in ("x86_64", "amd64"):
        envs["nehalem-1"] = {"OPENBLAS_CORETYPE": "Nehalem", "NPY_DISABLE_CPU_FEATURES": X86_SIMD_OFF,
                             **REFERENCE}
        envs["haswell-4"] = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "4",
                             "OMP_NUM_THREADS": "4"}
        envs["native-3-no-avx512"] = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
                                      "OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "3"}
    return envs


def _execute(notebook: Path, env: dict[str, str], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                    "--ExecutePreprocessor.timeout=1200", "--output-dir", str(out_dir), str(notebook)],
                   env={**os.environ, **env}, check=True, capture_output=True, cwd=notebook.parent)
    return out_dir / notebook.name


def _texts(path: Path) -> list[list[str]]:
    """Per code cell, the text of every output (streams and text/plain), images left out."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    texts = []
    for cell in cells:
        parts = []
        previous = None
        for out in cell.get("outputs", []):
            if "text" in out:
                text = "".join(out["text"])
                # consecutive chunks of one stream are one output (as nbval and the book merge
                # them): where the kernel split a stream depends on timing, not on the numbers
                if previous == out.get("name") and parts:
                    parts[-1] += text
                else:
                    parts.append(text)
                previous = out.get("name")
                continue
            previous = None
            for key, value in out.get("data", {}).items():
                if key.startswith("image/"):
                    continue
                parts.append(f"[{key}] " + ("".join(value) if isinstance(value, list) else str(value)))
        texts.append(parts)
    return texts


def survey(notebooks: list[Path], workers: int = 2) -> int:
    """Execute ``notebooks`` under every survey environment; print the cells whose outputs differ."""
    envs = survey_environments()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        jobs = {(nb, name): pool.submit(_execute, nb, env, Path(tmp) / name)
                for nb in notebooks for name, env in envs.items()}
        n_diff = 0
        for nb in notebooks:
            runs = {name: _texts(jobs[nb, name].result()) for name in envs}
            ref = runs["reference"]
            for i, ref_parts in enumerate(ref):
                variants = {name: run[i] for name, run in runs.items() if run[i] != ref_parts}
                if not variants:
                    continue
                n_diff += 1
                print(f"\n=== {nb.stem}, code cell {i} (nbval 'Cell {i}') differs")
                for name, parts in {"reference": ref_parts, **variants}.items():
                    print(f"--- {name}")
                    for part in parts:
                        print(part.rstrip()[:2000])
        print(f"\n{n_diff} cell(s) differ across {len(envs)} environments ({', '.join(envs)}).")
    return 1 if n_diff else 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("nbval", "survey", "env"):
        print(__doc__)
        return 2
    if argv[0] == "env":
        env = perturbed()
        print(check_perturbed(env))
        print(" ".join(f"{k}={v}" for k, v in env.items()))
        return 0
    if argv[0] == "nbval":
        env = perturbed()
        print("nbval under another numerical environment --", check_perturbed(env), flush=True)
        cmd = [sys.executable, "-m", "pytest", *NBVAL, "-p", "no:cacheprovider", *(argv[1:] or ["book", "-q"])]
        return subprocess.run(cmd, env={**os.environ, **env}, cwd=ROOT).returncode
    paths = [Path(a).resolve() for a in argv[1:]] or sorted((ROOT / "book").glob("*.ipynb"))
    return survey(paths)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
