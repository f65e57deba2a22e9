// Keyboard shortcuts for the review pages (no build step). Keys do nothing while typing in a field.
(function () {
  "use strict";
  function typing(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }
  function go(id) { if (id) { window.location.href = "/ui/items/" + encodeURIComponent(id); } }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey && ev.key === "Enter" && typing(document.activeElement)) {
      var form = document.activeElement.form;
      if (form && form.reportValidity()) { form.requestSubmit(); }
      ev.preventDefault();
      return;
    }
    if (ev.altKey || ev.ctrlKey || ev.metaKey || typing(document.activeElement)) { return; }
    var facts = document.getElementById("facts");
    var focus = function (id) { var el = document.getElementById(id); if (el) { el.focus(); ev.preventDefault(); } };
    switch (ev.key) {
      case "c": { var b = document.getElementById("claim") || document.getElementById("release"); if (b) { b.click(); ev.preventDefault(); } break; }
      case "a": focus("approve-reason"); break;
      case "r": focus("reject-reason"); break;
      case "m": focus("comment-text"); break;
      case "j": if (facts) { go(facts.dataset.next); } else { var link = document.querySelector("a.open-item"); if (link) { link.focus(); } } break;
      case "k": if (facts) { go(facts.dataset.prev); } break;
      case "/": focus("f-category"); focus("q-key"); break;
      case "?": { var h = document.querySelector(".hint"); if (h) { h.scrollIntoView(); h.style.fontWeight = "bold"; } break; }
      default: break;
    }
  });
})();
