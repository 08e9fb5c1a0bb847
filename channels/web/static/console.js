import { api } from "./api.js";

// Every page: the header's "Acting as" form. Policy names the console's people web:<id>.
const form = document.getElementById("acting-as");

function showRoles(container, roles) {
  const chips = roles.length ? roles : [null];
  container.replaceChildren(
    ...chips.map((role) => {
      const chip = document.createElement("span");
      chip.className = role ? "role" : "role none";
      chip.textContent = role || "no role";
      return chip;
    }),
  );
}

if (form) {
  const input = document.getElementById("acting-user");
  const roles = document.getElementById("acting-roles");
  const status = document.getElementById("acting-status");
  let current = input.value;
  let fade = null;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = input.value.trim();
    status.className = "acting-status";
    if (!/^\S+$/.test(user)) {
      status.textContent = "a user id cannot be empty or contain spaces";
      status.classList.add("error");
      return;
    }
    try {
      const payload = await api("POST", "/console/as", { user });
      current = input.value = payload.user;
      showRoles(roles, payload.roles);
      status.textContent = `now acting as ${payload.principal}`;
      status.classList.add("ok");
      window.clearTimeout(fade);
      fade = window.setTimeout(() => { status.textContent = ""; }, 4000);
      document.dispatchEvent(new CustomEvent("opsloop:user", { detail: payload }));
    } catch (error) {
      input.value = current;
      status.textContent = `not switched: ${error.message}`;
      status.classList.add("error");
    }
  });

  input.addEventListener("input", () => {
    status.textContent = "";
  });
}
