"""Build the PDF with pdflatex while keeping Jupyter Book's LaTeX structure (parts, front matter).

sphinx-jupyterbook-latex maps the table of contents onto LaTeX parts and chapters, but it also
switches the engine to xelatex with unicode-math. This extension runs after it and restores the
lighter pdflatex route (Debian's texlive-latex-recommended/-extra, texlive-fonts-recommended,
tex-gyre, latexmk), teaches pdflatex the Unicode symbols the chapters use in prose, and ships a
stand-in for the one package Jupyter Book's LaTeX class needs beyond those (bbm).
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

# Unicode characters that may appear in prose (outside math), mapped to LaTeX.
UNICODE_TEXT = {
    "θ": r"\ensuremath{\theta}", "π": r"\ensuremath{\pi}", "μ": r"\ensuremath{\mu}",
    "σ": r"\ensuremath{\sigma}", "Σ": r"\ensuremath{\Sigma}", "λ": r"\ensuremath{\lambda}",
    "α": r"\ensuremath{\alpha}", "β": r"\ensuremath{\beta}", "γ": r"\ensuremath{\gamma}",
    "ρ": r"\ensuremath{\rho}", "η": r"\ensuremath{\eta}", "ℓ": r"\ensuremath{\ell}",
    "ε": r"\ensuremath{\varepsilon}", "δ": r"\ensuremath{\delta}", "Δ": r"\ensuremath{\Delta}",
    "∇": r"\ensuremath{\nabla}", "≥": r"\ensuremath{\geq}", "≤": r"\ensuremath{\leq}",
    "≈": r"\ensuremath{\approx}", "≠": r"\ensuremath{\neq}", "→": r"\ensuremath{\to}",
    "←": r"\ensuremath{\leftarrow}", "⇒": r"\ensuremath{\Rightarrow}", "↦": r"\ensuremath{\mapsto}",
    "∞": r"\ensuremath{\infty}", "∈": r"\ensuremath{\in}", "∑": r"\ensuremath{\sum}",
    "√": r"\ensuremath{\surd}", "±": r"\ensuremath{\pm}", "×": r"\ensuremath{\times}",
    "·": r"\ensuremath{\cdot}", "⋅": r"\ensuremath{\cdot}", "‖": r"\ensuremath{\Vert}",
    "∣": r"\ensuremath{\mid}", "⟨": r"\ensuremath{\langle}", "⟩": r"\ensuremath{\rangle}",
    "∂": r"\ensuremath{\partial}", "∝": r"\ensuremath{\propto}", "⊤": r"\ensuremath{\top}",
    "ᵀ": r"\ensuremath{^{\top}}", "⁽": r"\ensuremath{^{(}}", "⁾": r"\ensuremath{^{)}}",
    "ᵗ": r"\ensuremath{^{t}}", "ᵖ": r"\ensuremath{^{p}}", "⁺": r"\ensuremath{^{+}}",
    "⁻": r"\ensuremath{^{-}}", "⁰": r"\ensuremath{^{0}}", "¹": r"\ensuremath{^{1}}",
    "²": r"\ensuremath{^{2}}", "³": r"\ensuremath{^{3}}", "₀": r"\ensuremath{_{0}}",
    "₁": r"\ensuremath{_{1}}", "₂": r"\ensuremath{_{2}}", "₃": r"\ensuremath{_{3}}",
    "ₖ": r"\ensuremath{_{k}}", "ₙ": r"\ensuremath{_{n}}", "ₜ": r"\ensuremath{_{t}}",
    "−": r"\ensuremath{-}", "…": r"\ldots{}", "✓": r"\ensuremath{\checkmark}",
}
# The rest of the Greek alphabet that has a TeX name (omicron and the capitals that look Latin do not).
UNICODE_TEXT.update({ch: rf"\ensuremath{{\{name}}}" for ch, name in zip(
    "ζικνξτυφχψωΓΘΛΞΠΥΦΨΩ",
    "zeta iota kappa nu xi tau upsilon varphi chi psi omega Gamma Theta Lambda Xi Pi Upsilon Phi Psi Omega".split())})


def use_pdflatex(app, config) -> None:
    config["latex_engine"] = "pdflatex"
    config["latex_use_xindy"] = False
    # sphinx-proof's index of theorems lists page references that LaTeX cannot resolve (its
    # directives write no LaTeX labels); the PDF has its own table of contents.
    config["latex_domain_indices"] = False
    # Jupyter Book's LaTeX class loads bbm, which is not in the lighter TeX packages: ship a stand-in.
    config["latex_additional_files"] = list(config["latex_additional_files"]) + [str(HERE / "latex" / "bbm.sty")]
    elements = dict(config["latex_elements"])
    preamble = elements.get("preamble", "")
    for line in (r"\usepackage[Latin,Greek]{ucharclasses}", r"\usepackage{unicode-math}"):
        preamble = preamble.replace(line, "")
    declarations = "\n".join(
        rf"\DeclareUnicodeCharacter{{{ord(ch):04X}}}{{{tex}}}" for ch, tex in UNICODE_TEXT.items())
    elements["preamble"] = preamble + "\n\\usepackage{amssymb}\n" + declarations + "\n"
    elements["fontpkg"] = r"\usepackage{tgtermes}\usepackage{tgheros}\usepackage{tgcursor}"
    config["latex_elements"] = elements


def setup(app):
    # After sphinx-jupyterbook-latex's own config-inited handler (default priority 500).
    app.connect("config-inited", use_pdflatex, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
