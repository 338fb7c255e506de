//! Plain-text tables for the server commands: a header and left-aligned columns padded to
//! their widest cell, measured without color codes so colored cells still line up.

/// A table being built.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines, two spaces between columns, no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().take(columns).enumerate() {
                widths[i] = widths[i].max(console::measure_text_width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                line.push_str(cell);
                if i + 1 < columns {
                    let pad = width - console::measure_text_width(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_with_colors() {
        let mut t = Table::new(&["A", "BB", "C"]);
        t.row(vec![
            "\u{1b}[32mlong\u{1b}[0m".into(),
            "x".into(),
            String::new(),
        ]);
        t.row(vec!["y".into()]);
        let plain = console::strip_ansi_codes(&t.render()).into_owned();
        assert_eq!(plain, "A     BB  C\nlong  x\ny\n");
    }
}
