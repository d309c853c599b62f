// Moves the import progress bar by polling the task's status; without this file the page
// refreshes itself (a <noscript> meta refresh) until the task has finished.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box || box.getAttribute("data-finished") === "yes" || !window.fetch) { return; }
  var url = box.getAttribute("data-status-url");
  var bar = box.querySelector("progress");
  var status = box.querySelector("[data-status]");
  var message = box.querySelector("[data-message]");

  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (task) {
        bar.max = task.total || 1;
        bar.value = task.done;
        status.textContent = task.status;
        message.textContent = task.message;
        if (task.status === "done" || task.status === "failed") {
          window.location.reload();  // the finished page shows the summary and the report
        } else {
          setTimeout(poll, 1000);
        }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
