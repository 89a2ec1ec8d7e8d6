// The deploy form: a tag or commit picked from the list fills in "Commit or tag" without a page load.
// Each pick is also a plain link that reloads the form with it filled in, for when this file does not run.
// A file of its own rather than an inline handler: the Content-Security-Policy allows no inline scripts.
document.addEventListener("click", (event) => {
  const pick = event.target.closest("a[data-ref]");
  const box = document.getElementById("id_ref");
  if (!pick || !box || event.ctrlKey || event.metaKey || event.shiftKey) {
    return;
  }
  event.preventDefault();
  box.value = pick.dataset.ref;
  box.dispatchEvent(new Event("input", { bubbles: true }));
  box.focus();
});
