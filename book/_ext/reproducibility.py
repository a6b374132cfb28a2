"""Run the chapters under other numerical environments: the book's outputs must not depend on them.

A reader's machine differs from ours in its BLAS kernel, its SIMD instructions and its thread
count, and each changes the last bits of floating-point results. A stored output or prose number
that moves with those bits is a defect (README, "Outputs that hold on every machine"). This
module makes such environments on one machine:

``python book/_ext/reproducibility.py nbval [pytest args]``
    Runs nbval under two *perturbed* environments (:func:`perturbed`: other OpenBLAS kernels,
    numpy's SIMD dispatch restricted to the baseline in one of them, two BLAS threads), after
    checking and printing that each setting took effect. ``make reproducible`` calls it;
    ``make test`` includes it. nbval also compares the prose values (book/conftest.py).

``python book/_ext/reproducibility.py survey [chapter ...]``
    Executes the chapters (code and prose values) under every environment of
    :func:`survey_environments` and prints each code cell, and the prose values, that differ
    between environments (the raw text, so that a fragile digit shows
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


def perturbed() -> dict[str, dict[str, str]]:
    """Two other numerical environments on this machine, each differing from the reference in
    its BLAS kernel and its thread count (2):

    - "generic": an older kernel and numpy's SIMD dispatch restricted to the baseline (on
      x86-64 Sandybridge: AVX without FMA, so products round differently from every FMA kernel);
    - "other kernel": another FMA kernel with numpy's full SIMD (on x86-64 Haswell's AVX2 instead
      of AVX-512). It catches what the generic one can miss: a result that depends on the
      pairing of BLAS and numpy's vector code (a chaotic gradient path in the first edition).
    """
    machine = platform.machine().lower()
    threads = {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    if machine in ("x86_64", "amd64"):
        native = _probe(REFERENCE)["architecture"]
        generic = "Nehalem" if native == "Sandybridge" else "Sandybridge"
        other = "Nehalem" if native == "Haswell" else "Haswell"
        envs = {"generic": {"OPENBLAS_CORETYPE": generic, "NPY_DISABLE_CPU_FEATURES": X86_SIMD_OFF, **threads},
                "other kernel": {"OPENBLAS_CORETYPE": other, **threads}}
    elif machine in ("aarch64", "arm64"):
        envs = {"generic": {"OPENBLAS_CORETYPE": "ARMV8", "NPY_DISABLE_CPU_FEATURES": ARM_SIMD_OFF, **threads},
                "other kernel": {"OPENBLAS_CORETYPE": "CORTEXA57", **threads}}
    else:
        raise SystemExit(f"no perturbed environment is defined for {machine}")
    return envs


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
    if "NPY_DISABLE_CPU_FEATURES" in env and set(new["simd"]) == set(ref["simd"]):
        problems.append("numpy's SIMD dispatch is unchanged (NPY_DISABLE_CPU_FEATURES had no effect)")
    if problems:
        raise SystemExit("the perturbed environment did not take effect: " + "; ".join(problems))
    dropped = sorted(set(ref["simd"]) - set(new["simd"]))
    simd = f"numpy SIMD without {', '.join(dropped)}" if dropped else "numpy's full SIMD"
    return (f"reference: OpenBLAS {ref['architecture']}, {ref['threads']} thread(s); "
            f"this run: OpenBLAS {new['architecture']}, {new['threads']} thread(s), {simd}")


def survey_environments() -> dict[str, dict[str, str]]:
    """The environments a survey compares: the reference, the two perturbed ones and more."""
    envs = {"reference": REFERENCE, **perturbed()}
    if platform.machine().lower() in ("x86_64", "amd64"):
        envs["nehalem-1"] = {"OPENBLAS_CORETYPE": "Nehalem", "NPY_DISABLE_CPU_FEATURES": X86_SIMD_OFF,
                             **REFERENCE}
        envs["native-3-no-avx512"] = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
                                      "OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "3"}
    return envs


def _execute(notebook: Path, env: dict[str, str], out_dir: Path) -> Path:
    """Execute a copy of ``notebook`` (code outputs and prose values) under ``env``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    copy = out_dir / notebook.name
    copy.write_bytes(notebook.read_bytes())
    runner = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
              "import inline_values; inline_values.execute(Path(sys.argv[2]), cwd=Path(sys.argv[3]))")
    subprocess.run([sys.executable, "-c", runner, str(Path(__file__).parent), str(copy), str(notebook.parent)],
                   env={**os.environ, **env}, check=True, capture_output=True)
    return copy


def _texts(path: Path) -> list[list[str]]:
    """Per code cell, the text of every output (streams and text/plain), images left out; then,
    as one more entry, the values of the prose's {eval} roles.

    Consecutive chunks of one stream are joined, as nbval does: a kernel under load splits
    the same printed text into chunks at other places.
    """
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    texts = []
    for cell in cells:
        parts, last_stream = [], None
        for out in cell.get("outputs", []):
            if "text" in out:
                text = "".join(out["text"])
                if out.get("name") == last_stream:
                    parts[-1] += text
                else:
                    parts.append(text)
                last_stream = out.get("name")
                continue
            last_stream = None
            for key, value in out.get("data", {}).items():
                if key.startswith("image/"):
                    continue
                parts.append(f"[{key}] " + ("".join(value) if isinstance(value, list) else str(value)))
        texts.append(parts)
    markdown = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]
    texts.append([f"{e['expression']} = {e['result'].get('data', {}).get('text/plain')}"
                  for c in markdown for e in c.get("metadata", {}).get("user_expressions", [])])
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
                where = "prose values" if i == len(ref) - 1 else f"code cell {i} (nbval 'Cell {i}')"
                print(f"\n=== {nb.stem}, {where} differs")
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
        for name, env in perturbed().items():
            print(f"{name}: {check_perturbed(env)}")
            print("  " + " ".join(f"{k}={v}" for k, v in env.items()))
        return 0
    if argv[0] == "nbval":
        failed = 0
        for name, env in perturbed().items():
            print(f"nbval under another numerical environment ({name}) -- {check_perturbed(env)}", flush=True)
            cmd = [sys.executable, "-m", "pytest", *NBVAL, "-p", "no:cacheprovider", *(argv[1:] or ["book", "-q"])]
            failed |= subprocess.run(cmd, env={**os.environ, **env}, cwd=ROOT).returncode
        return failed
    paths = [Path(a).resolve() for a in argv[1:]] or sorted((ROOT / "book").glob("*.ipynb"))
    return survey(paths)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
