/**
 * The login page's script, served as /assets/login.js (the CSP allows no inline script). It reads
 * the secret from the URL fragment, which never reaches a server, proxy log or Referer, clears it
 * from the address bar, and spends it only when the button is pressed: a link preview or a
 * prefetch that loads the page spends nothing.
 */
export const LOGIN_SCRIPT = `"use strict";
const button = document.getElementById("login");
const status = document.getElementById("status");
const secret = location.hash.slice(1);
history.replaceState(null, "", location.pathname);
if (!secret) {
  button.disabled = true;
  status.textContent = "This page needs the link printed by \\u0060nightshift dashboard\\u0060 (the part after #).";
}
button.addEventListener("click", async () => {
  button.disabled = true;
  status.textContent = "Signing in…";
  try {
    const response = await fetch("/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ secret }), credentials: "same-origin" });
    if (response.ok) return location.replace("/");
    status.textContent = await response.text();
  } catch (error) {
    status.textContent = "The dashboard did not answer: " + error.message;
  }
});
`;
