//! Aligned plain-text tables for listings (`instance generations`, `roots`, ...), through
//! comfy-table: no borders, a header line, columns two spaces apart, no trailing blanks, and
//! nothing for an empty list (as `ls` prints nothing).

use comfy_table::{presets::NOTHING, CellAlignment, Table};

/// An empty table with these column headers.
pub fn new(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header(headers.to_vec());
    table
}

/// Right-aligns column `index` (numbers).
pub fn right(table: &mut Table, index: usize) {
    if let Some(column) = table.column_mut(index) {
        column.set_cell_alignment(CellAlignment::Right);
    }
}

/// The table's text, one line per row, ending in a newline; nothing at all without rows.
pub fn render(table: &Table) -> String {
    if table.row_count() == 0 {
        return String::new();
    }
    let mut table = table.clone();
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
