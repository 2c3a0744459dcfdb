// Tables with a div.explore[data-table]: filter rows by a column's values (selects with
// data-column) and show or hide columns (checkboxes with data-column). Runs offline.
document.querySelectorAll("div.explore[data-table]").forEach(function (box) {
  var table = document.getElementById(box.getAttribute("data-table"));
  if (!table || !table.tBodies.length) { return; }
  box.hidden = false;
  var selects = Array.prototype.slice.call(box.querySelectorAll("select[data-column]"));
  var count = box.querySelector(".count");
  function text(row, column) {
    var cell = row.cells[column];
    return cell ? cell.textContent.trim() : "";
  }
  function filter() {
    var rows = table.tBodies[0].rows, shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var keep = selects.every(function (s) {
        return !s.value || text(rows[i], +s.getAttribute("data-column")) === s.value.trim();
      });
      rows[i].hidden = !keep;
      if (keep) { shown++; }
    }
    if (count) { count.textContent = shown + " of " + rows.length + " rows"; }
  }
  selects.forEach(function (s) { s.addEventListener("change", filter); });
  box.querySelectorAll("input[type=checkbox][data-column]").forEach(function (box) {
    box.addEventListener("change", function () {
      var column = +box.getAttribute("data-column");
      Array.prototype.forEach.call(table.rows, function (row) {
        if (row.cells[column]) { row.cells[column].hidden = !box.checked; }
      });
    });
  });
  filter();
});
