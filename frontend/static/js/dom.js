// el("button", {type: "button", onclick: fund, className: "secondary"}, "Fund") → a <button>.
// Properties the element has are set as properties; others (data-*, aria-*) as attributes.
export function el(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key in element) element[key] = value;
    else element.setAttribute(key, value);
  }
  element.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

// One status line (a .status element): data-state is signing, pending, confirmed, waiting or failed;
// data-reason says why it failed.
export function showStatus(element, state, message, reason = "") {
  element.dataset.state = state;
  element.dataset.reason = reason;
  element.textContent = message;
}
