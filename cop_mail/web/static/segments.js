// Live count and sample for the segment builder. The form works without this file:
// its buttons post it back. Here, changing what a condition filters on re-draws the
// form (new choices), and any other change asks the server for the count and sample.
(function () {
  "use strict";
  var form = document.getElementById("segment-form");
  if (!form || !window.fetch || !window.FormData) { return; }
  var panel = document.getElementById("segment-preview");
  var url = form.getAttribute("data-preview-url");
  var token = form.querySelector("input[name=csrf_token]").value;
  var timer = null;
  var latest = 0;

  function element(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text) { node.textContent = text; }
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    return node;
  }

  function show(data) {
    panel.textContent = "";
    if (!data.ok) {
      panel.appendChild(element("p", "These rules need fixing:"));
      var problems = element("ul", "", { "class": "problems" });
      data.problems.forEach(function (problem) { problems.appendChild(element("li", problem)); });
      panel.appendChild(problems);
      return;
    }
    var summary = element("p");
    summary.appendChild(element("span", data.count.toLocaleString(), { "class": "count", "data-count": "" }));
    summary.appendChild(document.createTextNode(" members match; "));
    summary.appendChild(element("strong", data.reachable.toLocaleString()));
    summary.appendChild(document.createTextNode(" of them can receive mail (active and not suppressed)."));
    panel.appendChild(summary);
    panel.appendChild(element("p", data.description));
    panel.appendChild(element("h2", "Sample"));
    var list = element("ul");
    if (!data.sample.length) { list.appendChild(element("li", "Nobody matches.", { "class": "empty" })); }
    data.sample.forEach(function (row) {
      var item = element("li");
      item.appendChild(element("a", row.email, { href: row.url }));
      item.appendChild(document.createTextNode(" " + (row.name || "") + " (" + row.status + ")"));
      list.appendChild(item);
    });
    panel.appendChild(list);
  }

  function refreshCount() {
    var ticket = ++latest;
    fetch(url, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-CSRFToken": token, "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) { throw new Error(response.status); }
      return response.json();
    }).then(function (data) {
      if (ticket === latest) { show(data); }  // an older, slower answer never overwrites a newer one
    }).catch(function () { /* the Update button still works */ });
  }

  function changed(event) {
    var target = event.target;
    if (target.name === "rules_json") { return; }
    if (target.hasAttribute("data-refresh")) {
      if (event.type !== "change") { return; }
      var redraw = form.querySelector("button[name=action][value=preview]");
      if (redraw) { redraw.click(); }
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(refreshCount, 300);
  }

  form.addEventListener("change", changed);
  form.addEventListener("input", changed);
})();
