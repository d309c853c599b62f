// The newsletter composer, live. The form works without this file: its buttons post it back
// (Preview, Search, Send a test, Save). Here, any change refreshes the preview and the pre-send
// checks in place, the Preview button does the same without reloading, and the story, resource
// and member pickers search as you type. Text from the server is set with textContent only.
(function () {
  "use strict";
  var form = document.getElementById("composer");
  if (!form || !window.fetch || !window.FormData) { return; }
  var previewUrl = form.getAttribute("data-preview-url");
  var searchUrl = form.getAttribute("data-search-url");
  var token = form.querySelector("input[name=csrf_token]").value;
  var timer = null;
  var latest = 0;

  function byId(id) { return document.getElementById(id); }

  function element(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text) { node.textContent = text; }
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    return node;
  }

  function setText(id, text) {
    var node = byId(id);
    if (node) { node.textContent = text || ""; }
  }

  function showErrors(errors) {
    var box = byId("preview-errors");
    box.textContent = "";
    if (!errors.length) { return; }
    box.appendChild(element("p", "The email cannot be built yet:", { "class": "field-error" }));
    var list = element("ul");
    errors.forEach(function (error) { list.appendChild(element("li", error.text, { "class": "field-error" })); });
    box.appendChild(list);
  }

  function showChecks(data) {
    var list = byId("checks");
    list.textContent = "";
    if (!data.ok) {
      list.appendChild(element("li", "The checks run once the email can be built.", { "class": "empty" }));
      return;
    }
    data.checks.forEach(function (check) {
      var label = check.label + (check.label.indexOf("HTML") === 0 ? " (" + data.size_label + ")" : "");
      var item = element("li", label, { "class": check.ok ? "ok" : "fail" });
      if (check.problems.length) {
        var problems = element("ul");
        check.problems.forEach(function (problem) { problems.appendChild(element("li", problem)); });
        item.appendChild(problems);
      }
      list.appendChild(item);
    });
  }

  function showNotices(notices) {
    var list = byId("preview-notices");
    list.textContent = "";
    notices.forEach(function (notice) { list.appendChild(element("li", notice)); });
  }

  function show(data) {
    showErrors(data.errors);
    showNotices(data.notices);
    showChecks(data);
    if (!data.ok) { return; }  // keep the last good preview on screen while the coordinator fixes things
    setText("preview-recipient", data.recipient);
    setText("preview-subject", data.subject);
    setText("preview-preheader", data.preheader);
    setText("preview-text", data.text);
    byId("preview-desktop").srcdoc = data.html;
    byId("preview-phone").srcdoc = data.html;
    form.setAttribute("data-previewed", String(latest));
  }

  function refresh() {
    var ticket = ++latest;
    var body = new FormData(form);
    body.delete("action");
    fetch(previewUrl, {
      method: "POST",
      body: body,
      headers: { "X-CSRFToken": token, "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      if (response.status === 413) { throw new Error("The form is too large to preview: is a picture pasted into the essay?"); }
      if (!response.ok) { throw new Error("The preview could not be made (" + response.status + ")."); }
      return response.json();
    }).then(function (data) {
      if (ticket === latest) { show(data); }  // an older, slower answer never overwrites a newer one
    }).catch(function (error) {
      if (ticket === latest) { showErrors([{ text: error.message }]); }
    });
  }

  function soon(delay) {
    clearTimeout(timer);
    timer = setTimeout(refresh, delay);
  }

  // --- pickers ---------------------------------------------------------------------------------

  function checkedIds(field) {
    return Array.prototype.map.call(form.querySelectorAll("input[name=" + field + "]:checked"), function (box) {
      return box.value;
    });
  }

  function fillPicker(list, field, results, checked) {
    list.textContent = "";
    if (!results.length) { list.appendChild(element("li", "Nothing matches.", { "class": "empty" })); }
    results.forEach(function (row) {
      var item = element("li");
      var label = element("label");
      var box = element("input", "", { type: "checkbox", name: field, value: String(row.id) });
      box.checked = checked.indexOf(String(row.id)) !== -1;
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + row.title));
      item.appendChild(label);
      if (row.detail) { item.appendChild(element("small", row.detail)); }
      list.appendChild(item);
    });
  }

  function search(kind, query, include) {
    var params = new URLSearchParams({ kind: kind, q: query });
    (include || []).forEach(function (id) { params.append("include", id); });
    return fetch(searchUrl + "?" + params.toString(), {
      headers: { "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) { throw new Error(response.status); }
      return response.json();
    });
  }

  Array.prototype.forEach.call(form.querySelectorAll("input[data-picker]"), function (input) {
    var list = byId(input.getAttribute("data-list"));
    var field = input.getAttribute("data-field");
    var pickerTimer = null;
    var asked = 0;
    input.addEventListener("input", function (event) {
      event.stopPropagation();  // searching is not a change to the email
      clearTimeout(pickerTimer);
      pickerTimer = setTimeout(function () {
        var ticket = ++asked;
        var checked = checkedIds(field);
        search(input.getAttribute("data-picker"), input.value, checked).then(function (data) {
          if (ticket === asked) { fillPicker(list, field, data.results, checked); }
        }).catch(function () { /* the Search button still works */ });
      }, 250);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); }
    });
  });

  var members = byId("member-options");
  Array.prototype.forEach.call(form.querySelectorAll("input[list=member-options]"), function (input) {
    var memberTimer = null;
    input.addEventListener("input", function () {
      clearTimeout(memberTimer);
      if (input.value.length < 2) { return; }
      memberTimer = setTimeout(function () {
        search("members", input.value).then(function (data) {
          members.textContent = "";
          data.results.forEach(function (row) {
            members.appendChild(element("option", "", { value: row.detail, label: row.title }));
          });
        }).catch(function () { /* typing the address in full still works */ });
      }, 250);
    });
  });

  // --- wiring ----------------------------------------------------------------------------------

  form.addEventListener("input", function (event) {
    if (event.target && event.target.hasAttribute("data-picker")) { return; }
    soon(600);
  });
  form.addEventListener("change", function (event) {
    if (event.target && event.target.hasAttribute("data-picker")) { return; }
    soon(150);
  });
  var button = byId("preview-button");
  if (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      refresh();
    });
  }
})();
