// Search results show a text snippet of each page, cut from the page's HTML before MathJax
// ran, so its maths is raw TeX. Typeset the complete \( ... \) spans of each snippet and drop
// the delimiters of a span that the cut left incomplete.
(function () {
  function tidy(node) {
    const text = node.textContent;
    const open = (text.match(/\\\(/g) || []).length, close = (text.match(/\\\)/g) || []).length;
    if (open !== close) node.textContent = text.replace(/\\[()]/g, " ");
  }
  function typeset(nodes) {
    nodes.forEach(tidy);
    if (window.MathJax && MathJax.typesetPromise) MathJax.typesetPromise(nodes).catch(() => {});
  }
  document.addEventListener("DOMContentLoaded", function () {
    const results = document.getElementById("search-results");
    if (!results) return;
    new MutationObserver(function () {
      const fresh = Array.from(results.querySelectorAll("p.context:not([data-typeset])"));
      fresh.forEach(n => n.setAttribute("data-typeset", "1"));
      if (fresh.length) typeset(fresh);
    }).observe(results, { childList: true, subtree: true });
  });
})();
