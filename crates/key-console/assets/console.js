// Keyrack console: progressive enhancement only. Every page works without this script; it adds
// the Copy buttons and moves a sign-in link's code from the address bar into the form.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy"));
      var status = button.parentElement.querySelector(".copied");
      if (!field) {
        return;
      }
      var done = function () {
        if (status) {
          status.textContent = "Copied";
        }
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () {
          field.select();
        });
      } else {
        field.select();
        if (document.execCommand("copy")) {
          done();
        }
      }
    });
  });

  // A sign-in link carries its code after '#', which the browser never sends anywhere. Put it
  // in the form, and take it out of the address bar and the history.
  var token = document.getElementById("sign_in_token");
  if (token && window.location.hash.indexOf("#krl_") === 0) {
    token.value = window.location.hash.slice(1);
    window.history.replaceState(null, "", window.location.pathname);
  }
});
