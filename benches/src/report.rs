//! Result tables and their three renderings: markdown (shaped like the RFC's
//! tables: a row per size, a column per mechanism), CSV, and an SVG line plot
//! (one line per column over the rows' x values).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

/// How the x values of a table's rows are labelled in plots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    /// Message sizes in bytes (log scale, "64 B", "4 KiB").
    Bytes,
    /// Counts such as receivers (log scale, plain numbers).
    Count,
    /// Named rows: row `i` sits at x = 2^i (evenly spaced on the log
    /// axis) and is labelled with its row label.
    Categories,
}

/// One row: a label, its x value for plots, and a value per column
/// (`None`: not applicable or not measured).
#[derive(Clone, Debug)]
pub struct Row {
    /// The row label (first column).
    pub label: String,
    /// Position on the plot's x axis.
    pub x: f64,
    /// One value per column.
    pub cells: Vec<Option<f64>>,
}

/// A result table.
#[derive(Clone, Debug)]
pub struct Table {
    /// File stem (`<name>.md`, `.csv`, `.svg`).
    pub name: String,
    /// Heading.
    pub title: String,
    /// Unit of the cells ("ns", "x", "M msg/s").
    pub unit: String,
    /// Header of the label column.
    pub row_header: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Row>,
    /// Lines printed under the table.
    pub notes: Vec<String>,
    /// The x axis of the plot.
    pub x_axis: XAxis,
    /// Whether the plot's y axis is logarithmic.
    pub log_y: bool,
}

impl Table {
    /// An empty table.
    pub fn new(name: &str, title: &str, unit: &str, row_header: &str, columns: &[&str]) -> Table {
        Table {
            name: name.to_owned(),
            title: title.to_owned(),
            unit: unit.to_owned(),
            row_header: row_header.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
            x_axis: XAxis::Bytes,
            log_y: true,
        }
    }

    /// Append a row.
    pub fn push(&mut self, label: impl Into<String>, x: f64, cells: Vec<Option<f64>>) {
        assert_eq!(cells.len(), self.columns.len(), "row width");
        self.rows.push(Row {
            label: label.into(),
            x,
            cells,
        });
    }

    /// Append a note.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The table as markdown: heading, table, notes.
    pub fn markdown(&self) -> String {
        let mut s = format!("### {} ({})\n\n", self.title, self.unit);
        let _ = write!(s, "| {} |", self.row_header);
        for c in &self.columns {
            let _ = write!(s, " {c} |");
        }
        s.push_str("\n|---|");
        for _ in &self.columns {
            s.push_str("---:|");
        }
        s.push('\n');
        for r in &self.rows {
            let _ = write!(s, "| {} |", r.label);
            for c in &r.cells {
                let _ = write!(s, " {} |", c.map_or("n/a".to_owned(), fmt_value));
            }
            s.push('\n');
        }
        for n in &self.notes {
            let _ = write!(s, "\n{n}\n");
        }
        s
    }

    /// The table as CSV (a header line, then a line per row; empty cells for
    /// missing values).
    pub fn csv(&self) -> String {
        let mut s = csv_field(&self.row_header);
        s.push_str(",x");
        for c in &self.columns {
            s.push(',');
            s.push_str(&csv_field(&format!("{c} ({})", self.unit)));
        }
        s.push('\n');
        for r in &self.rows {
            s.push_str(&csv_field(&r.label));
            let _ = write!(s, ",{}", r.x);
            for c in &r.cells {
                s.push(',');
                if let Some(v) = c {
                    let _ = write!(s, "{v:.3}");
                }
            }
            s.push('\n');
        }
        s
    }

    /// Draw the table as an SVG line plot at `path`.
    pub fn svg(&self, path: &Path) -> Result<(), String> {
        self.draw(path)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn draw(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let values: Vec<f64> = self
            .rows
            .iter()
            .flat_map(|r| r.cells.iter().flatten().copied())
            .filter(|v| v.is_finite() && (*v > 0.0 || !self.log_y))
            .collect();
        let xs: Vec<f64> = self.rows.iter().map(|r| r.x).filter(|x| *x > 0.0).collect();
        let root = SVGBackend::new(path, (1000, 540)).into_drawing_area();
        root.fill(&WHITE)?;
        // The plot on the left, the legend in a column of its own on the
        // right (inside the plot it would hide lines).
        let (plot_area, legend_area) = root.split_horizontally(760);
        if values.is_empty() || xs.is_empty() {
            root.titled(&format!("{} — no data", self.title), ("sans-serif", 20))?;
            root.present()?;
            return Ok(());
        }
        let (xmin, xmax) = bounds(&xs);
        let (xmin, xmax) = (xmin / 1.3, xmax * 1.3);
        let (ymin, ymax) = bounds(&values);
        let caption = format!("{} ({})", self.title, self.unit);
        let mut builder = ChartBuilder::on(&plot_area);
        builder
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(80);
        let x_axis = self.x_axis;
        let labels: Vec<String> = self.rows.iter().map(|r| r.label.clone()).collect();
        let x_fmt = move |x: &f64| match x_axis {
            XAxis::Bytes => fmt_bytes(*x),
            XAxis::Count => format!("{x:.0}"),
            XAxis::Categories => {
                let i = x.log2().round();
                if (x - i.exp2()).abs() < 1e-6 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
        };
        let y_fmt = |y: &f64| fmt_value(*y);
        let x_desc = self.row_header.clone();
        let y_desc = self.unit.clone();
        // Two chart types (log or linear y): draw through one generic helper.
        if self.log_y {
            let mut chart = builder.build_cartesian_2d(
                (xmin..xmax).log_scale().base(2.0),
                (ymin / 1.5..ymax * 1.5).log_scale(),
            )?;
            chart
                .configure_mesh()
                .bold_line_style(GRID_BOLD)
                .light_line_style(GRID_LIGHT)
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .draw()?;
            self.draw_lines(&mut chart)?;
        } else {
            let span = (ymax - ymin).max(ymax.abs() * 0.1).max(1e-9);
            let mut chart = builder.build_cartesian_2d(
                (xmin..xmax).log_scale().base(2.0),
                (ymin - span * 0.1).min(0.0)..ymax + span * 0.1,
            )?;
            chart
                .configure_mesh()
                .bold_line_style(GRID_BOLD)
                .light_line_style(GRID_LIGHT)
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .draw()?;
            self.draw_lines(&mut chart)?;
        }
        for (i, name) in self.columns.iter().enumerate() {
            let y = 60 + 22 * i as i32;
            let color = Palette99::pick(i).to_rgba();
            legend_area.draw(&PathElement::new(
                vec![(8, y), (32, y)],
                color.stroke_width(2),
            ))?;
            legend_area.draw(&Text::new(name.clone(), (40, y - 7), ("sans-serif", 13)))?;
        }
        root.present()?;
        Ok(())
    }

    fn draw_lines<'a, X, Y>(
        &self,
        chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    ) -> Result<(), Box<dyn std::error::Error>>
    where
        X: Ranged<ValueType = f64>,
        Y: Ranged<ValueType = f64>,
    {
        for i in 0..self.columns.len() {
            let points: Vec<(f64, f64)> = self
                .rows
                .iter()
                .filter_map(|r| r.cells[i].map(|v| (r.x, v)))
                .filter(|(x, v)| *x > 0.0 && v.is_finite() && (*v > 0.0 || !self.log_y))
                .collect();
            if points.is_empty() {
                continue;
            }
            let color = Palette99::pick(i).to_rgba();
            chart.draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))?;
        }
        Ok(())
    }

    /// Write `<dir>/<name>.md`, `.csv` and `.svg`.
    pub fn write_all(&self, dir: &Path) -> Result<(), String> {
        let io = |e: std::io::Error| format!("{}: {e}", dir.display());
        std::fs::write(dir.join(format!("{}.md", self.name)), self.markdown()).map_err(io)?;
        std::fs::write(dir.join(format!("{}.csv", self.name)), self.csv()).map_err(io)?;
        self.svg(&dir.join(format!("{}.svg", self.name)))
    }
}

/// Grid lines: plain greys (some SVG renderers ignore opacity).
const GRID_BOLD: RGBColor = RGBColor(200, 200, 200);
const GRID_LIGHT: RGBColor = RGBColor(238, 238, 238);

fn bounds(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo == hi {
        (lo * 0.9, hi * 1.1 + 1e-9)
    } else {
        (lo, hi)
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A value with thousands separators at 100 and above ("1,326"), one
/// decimal from 10, two below.
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_owned();
    }
    if v.abs() >= 100.0 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// "64 B", "4 KiB", "1 MiB".
pub fn fmt_bytes(b: f64) -> String {
    let b = b.round() as u64;
    if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else if b >= 1024 && b.is_multiple_of(1024) {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_sizes() {
        assert_eq!(fmt_value(1326.4), "1,326");
        assert_eq!(fmt_value(28550.0), "28,550");
        assert_eq!(fmt_value(1234567.0), "1,234,567");
        assert_eq!(fmt_value(12.34), "12.3");
        assert_eq!(fmt_value(1.234), "1.23");
        assert_eq!(fmt_bytes(64.0), "64 B");
        assert_eq!(fmt_bytes(4096.0), "4 KiB");
        assert_eq!(fmt_bytes(32768.0), "32 KiB");
    }

    #[test]
    fn renders() {
        let mut t = Table::new("t", "Test", "ns", "size", &["a", "b,c"]);
        t.push("64 B", 64.0, vec![Some(212.0), None]);
        t.push("4 KiB", 4096.0, vec![Some(1326.0), Some(5.5)]);
        t.note("a note");
        let md = t.markdown();
        assert!(md.contains("| 64 B | 212 | n/a |"), "{md}");
        assert!(md.contains("| 4 KiB | 1,326 | 5.50 |"), "{md}");
        let csv = t.csv();
        assert!(csv.starts_with("size,x,a (ns),\"b,c (ns)\"\n"), "{csv}");
        assert!(csv.contains("64 B,64,212.000,\n"), "{csv}");
        let dir = std::env::temp_dir().join(format!("shmcast-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        t.write_all(&dir).unwrap();
        let svg = std::fs::read_to_string(dir.join("t.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("Test"), "{svg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
