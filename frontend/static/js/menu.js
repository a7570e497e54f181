// On a phone the header's links fold behind a Menu button (CSS shows them always on wider screens).
const toggle = document.querySelector(".menu-toggle");
const nav = document.getElementById("main-nav");
if (toggle && nav) {
  toggle.hidden = false;
  nav.dataset.collapsible = "";
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    nav.toggleAttribute("data-open", open);
  });
}
