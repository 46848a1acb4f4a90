// Ferry's pages: small progressive enhancements; every page works without them.
(function () {
  "use strict";

  function setBar(bar, value) {
    var v = Math.max(0, Math.min(100, Math.round(value)));
    bar.setAttribute("aria-valuenow", String(v));
    bar.setAttribute("aria-valuetext", v + " %");
    var fill = bar.querySelector(".fill");
    if (fill) fill.style.width = v + "%";
  }

  // The table export form: show the columns of the chosen table only.
  function switchColumns(select) {
    var form = select.form;
    form.querySelectorAll("fieldset.columns").forEach(function (set) {
      set.hidden = set.getAttribute("data-table") !== select.value;
    });
  }

  // Move a column up or down; the numbers follow the list's order.
  function moveColumn(button) {
    var item = button.closest("li");
    var list = item.parentElement;
    if (button.getAttribute("data-move") === "up" && item.previousElementSibling) {
      list.insertBefore(item, item.previousElementSibling);
    } else if (button.getAttribute("data-move") === "down" && item.nextElementSibling) {
      list.insertBefore(item.nextElementSibling, item);
    }
    list.querySelectorAll("input.order").forEach(function (input, index) {
      input.value = String(index + 1);
    });
    button.focus();
  }

  // An upload with a progress bar: XMLHttpRequest reports the bytes sent; the server
  // answers with a redirect to the new job's page, where the browser goes.
  function upload(form, event) {
    if (!window.XMLHttpRequest || !window.FormData) return;
    event.preventDefault();
    var status = form.querySelector("[data-upload-status]");
    var bar = status.querySelector("[role=progressbar]");
    var text = status.querySelector("[role=status]");
    var button = form.querySelector("button[type=submit]");
    status.hidden = false;
    button.disabled = true;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRF-Token", form.querySelector("[name=csrf_token]").value);
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      var pct = (e.loaded * 100) / e.total;
      setBar(bar, pct);
      text.textContent = "Uploading… " + Math.round(pct) + " % (" + e.loaded.toLocaleString() + " of " + e.total.toLocaleString() + " bytes)";
    });
    xhr.addEventListener("load", function () {
      if (xhr.status >= 200 && xhr.status < 300 && xhr.responseURL && xhr.responseURL !== form.action) {
        setBar(bar, 100);
        text.textContent = "Uploaded. Opening the job…";
        window.location.assign(xhr.responseURL);
        return;
      }
      // A refusal is a whole page (the form with its message): show it as it is.
      document.open();
      document.write(xhr.responseText);
      document.close();
    });
    xhr.addEventListener("error", function () {
      text.textContent = "The upload did not get through. Check the connection and try again.";
      button.disabled = false;
    });
    xhr.send(new FormData(form));
  }

  // "Can be undone for 23 h 59 min": counted down on the page, from the server's time.
  function words(seconds) {
    if (seconds < 60) return Math.max(0, Math.round(seconds)) + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return hours < 48 ? hours + " h" + (minutes ? " " + minutes + " min" : "") : Math.floor(hours / 24) + " d";
  }

  function countDown() {
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("data-countdown")) - Date.now()) / 1000;
      el.textContent = left > 0 ? words(left) : "no time: reload the page";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[data-countdown]")) window.setInterval(countDown, 1000);
    document.querySelectorAll("select[data-columns-switch]").forEach(function (select) {
      switchColumns(select);
      select.addEventListener("change", function () { switchColumns(select); });
    });
    document.addEventListener("click", function (e) {
      var button = e.target.closest && e.target.closest("button.move");
      if (button) moveColumn(button);
    });
    document.querySelectorAll("form[data-upload]").forEach(function (form) {
      form.addEventListener("submit", function (e) { upload(form, e); });
    });
  });
})();
