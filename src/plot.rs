//! Evaluation plots: ROC curves, similarity histograms and generic line plots.
//!
//! Every plot function writes two files next to each other, `<prefix>.svg` (vector, text kept as
//! SVG `<text>` elements) and `<prefix>.png` (900x650 px raster), and returns their paths in that
//! order. Drawing is done with the `plotters` crate; the PNG is rendered into an RGB buffer with
//! plotters' bitmap backend and encoded with the `image` crate.
//!
//! Text needs a font: plotters finds the system "sans-serif" font through fontconfig (on Debian,
//! DejaVu Sans from `fonts-dejavu-core`). When no font can be loaded, the SVG is still written
//! (text is left to the SVG viewer's fonts, the layout uses built-in size estimates) and the
//! function returns [`PlotError::Font`] instead of writing the PNG.
//!
//! Input handling, common to all functions:
//! - non-finite values (NaN, ±inf) are skipped;
//! - empty inputs give an empty chart with a "no data" note, not an error;
//! - degenerate ranges (all values equal) are widened so that the data stay visible;
//! - the parent directory of `prefix` must exist ([`PlotError::Io`] otherwise).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_backend::{BackendCoord, DrawingErrorKind};

/// Width of every plot, in pixels (PNG) or SVG user units.
pub const PLOT_WIDTH: u32 = 900;
/// Height of every plot, in pixels (PNG) or SVG user units.
pub const PLOT_HEIGHT: u32 = 650;

/// Lowest FAR shown on the ROC plot's log axis, unless the data's smallest nonzero FAR is larger.
pub const ROC_MIN_FAR: f64 = 1e-4;

/// Errors of the plot functions.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// An argument is unusable (e.g. zero histogram bins).
    #[error("invalid plot argument: {0}")]
    InvalidArgument(String),
    /// Writing an output file failed (e.g. missing parent directory, no permission).
    #[error("cannot write plot file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// No font could be loaded for rendering text into the PNG (no fontconfig fonts installed).
    /// The SVG file has been written all the same; only the PNG is missing.
    #[error(
        "cannot load a font to render plot text into {path} (SVG written to {svg}): {message}"
    )]
    Font {
        /// The PNG that could not be drawn.
        path: PathBuf,
        /// The SVG that was written.
        svg: PathBuf,
        /// The font system's message.
        message: String,
    },
    /// The drawing library failed for another reason.
    #[error("cannot draw plot {path}: {message}")]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// The drawing library's message.
        message: String,
    },
    /// Encoding or writing the PNG failed.
    #[error("cannot encode PNG plot {path}: {source}")]
    Png {
        /// The PNG file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
}

/// One ROC point: false accept rate and true accept rate, both in [0, 1], and the similarity
/// threshold giving them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocPoint {
    /// False accept rate (impostor pairs accepted / impostor pairs), in [0, 1].
    pub far: f64,
    /// True accept rate (genuine pairs accepted / genuine pairs), in [0, 1].
    pub tar: f64,
    /// Similarity threshold (pairs with similarity >= threshold are accepted).
    pub threshold: f32,
}

/// Writes `<prefix>.svg` and `<prefix>.png` (900x650): ROC curves.
///
/// - x: FAR on a log10 axis, from `max(1e-4, smallest nonzero FAR)` (rounded down to a power of
///   ten) to 1. FARs below the axis minimum, including FAR = 0, are drawn at the axis minimum.
/// - y: TAR in [0, 1]; when every TAR shown is above 0.5 the axis is zoomed to
///   `[min TAR - margin, 1]` (rounded down to a multiple of 0.05).
/// - `curves`: (legend label, points), e.g. faceprint and a reference implementation. Points may
///   come in any order (they are sorted by FAR, then TAR); values outside [0, 1] are clamped and
///   non-finite ones skipped.
/// - `marks`: operating points (label, far, tar), drawn as dots labelled with `label`.
///
/// Returns `[svg, png]` paths. Errors: [`PlotError::Io`], [`PlotError::Font`] (SVG still
/// written), [`PlotError::Draw`], [`PlotError::Png`].
pub fn roc_plot(
    prefix: &Path,
    title: &str,
    curves: &[(&str, &[RocPoint])],
    marks: &[(&str, f64, f64)],
) -> Result<Vec<PathBuf>, PlotError> {
    let fig = RocFigure::new(title, curves, marks);
    write_both(prefix, &fig)
}

/// Writes `<prefix>.svg` and `<prefix>.png` (900x650): density-normalised histograms of the
/// cosine similarities of same-person (`genuine`) and different-person (`impostor`) pairs.
///
/// - Each class is normalised to unit area (bar height = count / (n * bin width)), so both are
///   visible whatever their counts; the legend gives each class's n.
/// - x range: [-1, 1], widened (with 2 % padding) to take in any values or thresholds outside it.
///   `bins` equal-width bins span that range. Non-finite similarities are skipped.
/// - `thresholds`: (label, value) drawn as vertical lines, listed in the legend with their value.
///
/// Returns `[svg, png]` paths. Errors: [`PlotError::InvalidArgument`] if `bins` is 0 or above
/// 100 000, and the errors of [`roc_plot`].
pub fn similarity_histogram(
    prefix: &Path,
    title: &str,
    genuine: &[f32],
    impostor: &[f32],
    thresholds: &[(&str, f32)],
    bins: usize,
) -> Result<Vec<PathBuf>, PlotError> {
    if bins == 0 || bins > 100_000 {
        return Err(PlotError::InvalidArgument(format!(
            "histogram bins must be in 1..=100000, got {bins}"
        )));
    }
    let fig = HistFigure::new(title, genuine, impostor, thresholds, bins);
    write_both(prefix, &fig)
}

/// Writes `<prefix>.svg` and `<prefix>.png` (900x650): a generic x/y line plot with several
/// labelled series on linear axes (e.g. precision/recall trade-off curves).
///
/// Points are joined in the order given; points with a non-finite coordinate are skipped. Axis
/// ranges are the data range padded by 3 %, widened by ±0.5 when all values are equal. A series
/// whose points are all equal (e.g. a single point) is drawn as a dot.
///
/// Returns `[svg, png]` paths. Errors: as for [`roc_plot`].
pub fn line_plot(
    prefix: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[(f64, f64)])],
) -> Result<Vec<PathBuf>, PlotError> {
    let fig = LineFigure::new(title, x_label, y_label, series);
    write_both(prefix, &fig)
}

// ---------------------------------------------------------------------------------------------
// Rendering to both files

/// A plot that can be drawn on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// `<prefix>.<ext>`, keeping any dots already in the prefix's file name.
fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

enum Failure {
    Font(String),
    Other(String),
}

fn classify<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Failure {
    match e {
        DrawingAreaErrorKind::BackendError(DrawingErrorKind::FontError(f)) => {
            Failure::Font(f.to_string())
        }
        other => Failure::Other(other.to_string()),
    }
}

fn write_both(prefix: &Path, fig: &impl Figure) -> Result<Vec<PathBuf>, PlotError> {
    let svg_path = with_ext(prefix, "svg");
    let png_path = with_ext(prefix, "png");

    // SVG, rendered to a string first so that a failed drawing leaves no half-written file.
    let svg = match render_svg(fig) {
        Ok(s) => s,
        Err(Failure::Other(message)) => {
            return Err(PlotError::Draw {
                path: svg_path,
                message,
            });
        }
        Err(Failure::Font(_)) => {
            // No usable font: lay the text out with size estimates instead. The SVG viewer
            // renders the <text> elements with its own fonts.
            render_svg_approx_text(fig).map_err(|message| PlotError::Draw {
                path: svg_path.clone(),
                message,
            })?
        }
    };
    std::fs::write(&svg_path, svg).map_err(|source| PlotError::Io {
        path: svg_path.clone(),
        source,
    })?;

    // PNG: draw into an RGB buffer, then encode.
    let (w, h) = (PLOT_WIDTH, PLOT_HEIGHT);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let res = fig.draw(&root).and_then(|_| root.present());
        if let Err(e) = res {
            return Err(match classify(e) {
                Failure::Font(message) => PlotError::Font {
                    path: png_path,
                    svg: svg_path,
                    message,
                },
                Failure::Other(message) => PlotError::Draw {
                    path: png_path,
                    message,
                },
            });
        }
    }
    image::save_buffer_with_format(
        &png_path,
        &buf,
        w,
        h,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|source| match source {
        image::ImageError::IoError(source) => PlotError::Io {
            path: png_path.clone(),
            source,
        },
        source => PlotError::Png {
            path: png_path.clone(),
            source,
        },
    })?;
    Ok(vec![svg_path, png_path])
}

fn render_svg(fig: &impl Figure) -> Result<String, Failure> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
        fig.draw(&root)
            .and_then(|_| root.present())
            .map_err(classify)?;
    }
    Ok(s)
}

fn render_svg_approx_text(fig: &impl Figure) -> Result<String, String> {
    let mut s = String::new();
    {
        let svg = SVGBackend::with_string(&mut s, (PLOT_WIDTH, PLOT_HEIGHT));
        let root = ApproxTextSvg(svg).into_drawing_area();
        fig.draw(&root)
            .and_then(|_| root.present())
            .map_err(|e| e.to_string())?;
    }
    Ok(s)
}

/// SVG backend whose text measuring does not need a font: widths are estimated from the
/// character count (0.6 em per character, about right for sans-serif digits and lower case).
/// plotters' SVG backend writes text as `<text>` elements without measuring it, so with this
/// wrapper a whole chart can be laid out on a machine without fonts (apart from plotters' own
/// legend, which measures through the font directly; see [`draw_legend`]).
struct ApproxTextSvg<'a>(SVGBackend<'a>);

type SvgErr<'a> = <SVGBackend<'a> as DrawingBackend>::ErrorType;

impl<'a> DrawingBackend for ApproxTextSvg<'a> {
    type ErrorType = SvgErr<'a>;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }
    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: plotters_backend::BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(point, color)
    }
    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_path(path, style)
    }
    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }
    fn draw_text<T: plotters_backend::BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_text(text, style, pos)
    }
    fn estimate_text_size<T: plotters_backend::BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let size = style.size();
        let w = (text.chars().count() as f64 * size * 0.6).ceil() as u32;
        Ok((w, size.ceil() as u32))
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        iwh: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, iwh, src)
    }
}

/// How a legend entry's key is drawn.
#[derive(Clone, Copy)]
enum Key {
    Line(RGBColor),
    Dashed(RGBColor),
    Patch(RGBColor),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Corner {
    UpperLeft,
    UpperRight,
    LowerLeft,
    LowerRight,
}

/// Approximate plotting-area size in pixels (figure minus margins, caption and label areas).
const AREA_W: f64 = 800.0;
const AREA_H: f64 = 525.0;

/// Approximate legend box size as a fraction of the plotting area.
fn legend_frac(entries: &[(String, Key)]) -> (f64, f64) {
    let chars = entries
        .iter()
        .map(|e| e.0.chars().count())
        .max()
        .unwrap_or(0) as f64;
    let w = (12.0 + 10.0 + 26.0 + 8.0 + 9.6 * chars + 10.0) / AREA_W;
    let h = (12.0 + 16.0 + 22.0 * entries.len() as f64) / AREA_H;
    (w.min(1.0), h.min(1.0))
}

/// The corner (first in `prefs` among the best) whose legend box covers the fewest of the given
/// points, in plotting-area fractions (x right, y up, both in [0, 1]). Polylines are sampled
/// along their segments so that sparse series count too.
fn pick_corner(lines: &[Vec<(f64, f64)>], entries: &[(String, Key)], prefs: &[Corner]) -> Corner {
    let (bw, bh) = legend_frac(entries);
    let inside = |c: Corner, (x, y): (f64, f64)| -> bool {
        let in_x = match c {
            Corner::UpperLeft | Corner::LowerLeft => x <= bw,
            _ => x >= 1.0 - bw,
        };
        let in_y = match c {
            Corner::UpperLeft | Corner::UpperRight => y >= 1.0 - bh,
            _ => y <= bh,
        };
        in_x && in_y
    };
    let mut best = (usize::MAX, prefs[0]);
    for &c in prefs {
        let mut n = 0;
        for line in lines {
            for (i, &p) in line.iter().enumerate() {
                n += inside(c, p) as usize;
                if let Some(&q) = line.get(i + 1) {
                    for k in 1..16 {
                        let t = k as f64 / 16.0;
                        n += inside(c, (p.0 + (q.0 - p.0) * t, p.1 + (q.1 - p.1) * t)) as usize;
                    }
                }
            }
        }
        if n < best.0 {
            best = (n, c);
        }
    }
    best.1
}

/// Draws a legend box in a corner of the plotting area. Text is measured through the backend
/// (the real font for PNG, estimates in [`ApproxTextSvg`]), unlike plotters' series labels.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Key)],
    corner: Corner,
) -> DrawResult<DB> {
    if entries.is_empty() {
        return Ok(());
    }
    let style = (FONT, 16).into_font().color(&BLACK);
    let mut text_w = 0u32;
    for (label, _) in entries {
        text_w = text_w.max(
            area.estimate_text_size(label, &style.clone().into_text_style(area))?
                .0,
        );
    }
    let (pad, key_w, gap, row_h, outer) = (10i32, 26i32, 8i32, 22i32, 12i32);
    let box_w = pad + key_w + gap + text_w as i32 + pad;
    let box_h = pad + row_h * entries.len() as i32 + pad - 4;
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let (x0, y0) = match corner {
        Corner::UpperLeft => (outer, outer),
        Corner::UpperRight => (w - outer - box_w, outer),
        Corner::LowerLeft => (outer, h - outer - box_h),
        Corner::LowerRight => (w - outer - box_w, h - outer - box_h),
    };
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + box_w, y0 + box_h)],
        WHITE.mix(0.88).filled(),
    ))?;
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + box_w, y0 + box_h)],
        RGBColor(160, 160, 160).stroke_width(1),
    ))?;
    let left = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Left,
        plotters::style::text_anchor::VPos::Center,
    );
    for (i, (label, key)) in entries.iter().enumerate() {
        let y = y0 + pad + row_h * i as i32 + row_h / 2 - 2;
        let (kx0, kx1) = (x0 + pad, x0 + pad + key_w);
        match *key {
            Key::Line(c) => area.draw(&PathElement::new(
                vec![(kx0, y), (kx1, y)],
                c.stroke_width(3),
            ))?,
            Key::Dashed(c) => {
                area.draw(&PathElement::new(
                    vec![(kx0, y), (kx0 + 10, y)],
                    c.stroke_width(3),
                ))?;
                area.draw(&PathElement::new(
                    vec![(kx0 + 16, y), (kx1, y)],
                    c.stroke_width(3),
                ))?;
            }
            Key::Patch(c) => {
                area.draw(&Rectangle::new(
                    [(kx0, y - 7), (kx1, y + 7)],
                    c.mix(0.35).filled(),
                ))?;
                area.draw(&Rectangle::new(
                    [(kx0, y - 7), (kx1, y + 7)],
                    c.stroke_width(2),
                ))?;
            }
        }
        area.draw(&Text::new(
            label.clone(),
            (kx1 + gap, y),
            style.clone().pos(left),
        ))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared style

const FONT: &str = "sans-serif";

/// Series colours (matplotlib's "tab10", readable on white and distinguishable when printed).
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Colours of operating-point marks and threshold lines (dark, to stand out from the series).
const MARK_COLORS: [RGBColor; 4] = [
    RGBColor(0, 0, 0),
    RGBColor(96, 96, 96),
    RGBColor(128, 110, 0),
    RGBColor(120, 40, 120),
];

fn mark_color(i: usize) -> RGBColor {
    MARK_COLORS[i % MARK_COLORS.len()]
}

/// Draws the title and returns the chart builder with the common margins and label areas.
fn chart_builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
) -> Result<ChartBuilder<'a, 'b, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let mut b = ChartBuilder::on(root);
    b.margin(15)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .caption(title, (FONT, 24));
    Ok(b)
}

fn note<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, text: &str) -> DrawResult<DB> {
    let (w, h) = root.dim_in_pixel();
    root.draw(&Text::new(
        text.to_string(),
        ((w / 2) as i32, (h / 2) as i32),
        (FONT, 28).into_font().color(&RGBColor(120, 120, 120)).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ),
        ),
    ))
}

/// min/max of finite values, or None.
fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Pads a range by `frac` of its width, widening degenerate ranges by ±0.5.
fn pad_range(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let w = hi - lo;
    if w > 0.0 && w.is_finite() {
        (lo - w * frac, hi + w * frac)
    } else {
        let d = (lo.abs() * 0.05).max(0.5);
        (lo - d, hi + d)
    }
}

/// Short tick label: no trailing zeros, scientific for small or large magnitudes.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e5).contains(&a) {
        let e = a.log10().floor();
        let m = v / 10f64.powf(e);
        if (m.abs() - 1.0).abs() < 1e-9 {
            return format!("{}1e{}", if v < 0.0 { "-" } else { "" }, e as i32);
        }
        let m = format!("{m:.1}");
        return format!("{}e{}", m.trim_end_matches(".0"), e as i32);
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

// ---------------------------------------------------------------------------------------------
// ROC

struct RocFigure {
    title: String,
    curves: Vec<(String, Vec<(f64, f64)>)>,
    marks: Vec<(String, f64, f64)>,
    x_min: f64,
    y_min: f64,
}

impl RocFigure {
    fn new(title: &str, curves: &[(&str, &[RocPoint])], marks: &[(&str, f64, f64)]) -> Self {
        let ok = |far: f64, tar: f64| far.is_finite() && tar.is_finite();
        let curves_in: Vec<(String, Vec<(f64, f64)>)> = curves
            .iter()
            .map(|(label, pts)| {
                let mut v: Vec<(f64, f64)> = pts
                    .iter()
                    .filter(|p| ok(p.far, p.tar))
                    .map(|p| (p.far.clamp(0.0, 1.0), p.tar.clamp(0.0, 1.0)))
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
                (label.to_string(), v)
            })
            .collect();
        let marks_in: Vec<(String, f64, f64)> = marks
            .iter()
            .filter(|m| ok(m.1, m.2))
            .map(|(l, far, tar)| (l.to_string(), far.clamp(0.0, 1.0), tar.clamp(0.0, 1.0)))
            .collect();

        // x axis minimum: the smallest nonzero FAR, at least ROC_MIN_FAR, down to a power of ten.
        let min_nonzero = curves_in
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.0))
            .chain(marks_in.iter().map(|m| m.1))
            .filter(|&f| f > 0.0)
            .fold(f64::INFINITY, f64::min);
        let mut x_min = if min_nonzero.is_finite() {
            min_nonzero.max(ROC_MIN_FAR)
        } else {
            ROC_MIN_FAR
        };
        x_min = 10f64.powf(x_min.log10().floor());
        if x_min >= 1.0 {
            x_min = 0.1;
        }
        let clamp_x = |f: f64| f.max(x_min);
        // Of the points left of the axis (FAR < x_min, e.g. FAR = 0), only the one with the
        // highest TAR matters: it is where the curve enters the plot, drawn at the axis minimum.
        let curves_in: Vec<_> = curves_in
            .into_iter()
            .map(|(l, v)| {
                let entry = v
                    .iter()
                    .filter(|p| p.0 < x_min)
                    .map(|p| p.1)
                    .reduce(f64::max);
                let pts = entry
                    .map(|t| (x_min, t))
                    .into_iter()
                    .chain(v.into_iter().filter(|p| p.0 >= x_min))
                    .collect::<Vec<_>>();
                (l, pts)
            })
            .collect();
        let marks_in: Vec<_> = marks_in
            .into_iter()
            .map(|(l, f, t)| (l, clamp_x(f), t))
            .collect();

        // y axis: zoom when everything shown is well above chance.
        let min_tar = curves_in
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.1))
            .chain(marks_in.iter().map(|m| m.2))
            .fold(f64::INFINITY, f64::min);
        let y_min = if min_tar.is_finite() && min_tar > 0.5 {
            (((min_tar - 0.02) / 0.05).floor() * 0.05).clamp(0.0, 0.95)
        } else {
            0.0
        };
        // Curves from every distinct threshold of a large evaluation have up to millions of
        // points: keep only points at least ~0.4 px (at 900x650) from the last kept one, plus the
        // last, so that the SVG stays small. The drawn curve is unchanged to the eye.
        // Minimum step: 1/2000 of the x axis (in decades) or 1/1300 of the y axis.
        let (min_dx, min_dy) = (-x_min.log10() / 2000.0, (1.0 - y_min) / 1300.0);
        let curves_in: Vec<_> = curves_in
            .into_iter()
            .map(|(l, v)| {
                let mut out: Vec<(f64, f64)> = Vec::with_capacity(v.len().min(8192));
                for (i, &p) in v.iter().enumerate() {
                    let keep = match out.last() {
                        None => true,
                        Some(&q) => {
                            i + 1 == v.len()
                                || (p.0.log10() - q.0.log10()).abs() > min_dx
                                || (p.1 - q.1).abs() > min_dy
                        }
                    };
                    if keep {
                        out.push(p);
                    }
                }
                (l, out)
            })
            .collect();
        RocFigure {
            title: title.to_string(),
            curves: curves_in,
            marks: marks_in,
            x_min,
            y_min,
        }
    }
}

impl Figure for RocFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut b = chart_builder(root, &self.title)?;
        let y_max = 1.0 + (1.0 - self.y_min) * 0.01;
        // A hair below x_min so that rounding in log10 cannot drop the first decade's tick.
        let x0 = self.x_min * (1.0 - 1e-9);
        let mut chart = b.build_cartesian_2d((x0..1.0).log_scale(), self.y_min..y_max)?;
        let decades = (-self.x_min.log10()).round().max(1.0) as usize;
        chart
            .configure_mesh()
            .x_desc("false accept rate (FAR, log scale)")
            .y_desc("true accept rate (TAR)")
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 15))
            .x_labels(decades + 1)
            .y_labels(11)
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(200, 200, 200))
            .draw()?;

        let has_data = self.curves.iter().any(|(_, v)| !v.is_empty()) || !self.marks.is_empty();
        if !has_data {
            note(root, "no data")?;
            return Ok(());
        }

        let mut legend = Vec::new();
        for (i, (label, pts)) in self.curves.iter().enumerate() {
            if pts.is_empty() {
                continue;
            }
            let c = color(i);
            let style = c.stroke_width(2);
            if pts.iter().all(|p| *p == pts[0]) {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
            }
            chart.draw_series(LineSeries::new(pts.iter().copied(), style))?;
            if !label.is_empty() {
                legend.push((label.clone(), Key::Line(c)));
            }
        }

        for (i, (label, far, tar)) in self.marks.iter().enumerate() {
            let c = mark_color(i);
            let text = if label.is_empty() {
                format!("TAR {tar:.4} @ FAR {}", tick_label(*far))
            } else {
                label.clone()
            };
            // ROC curves rise to the right, so the space below-right of a point on them is
            // free: put the label there (below-left near the right edge, above near the bottom).
            let near_right = (far.log10() - self.x_min.log10()) / (-self.x_min.log10()) > 0.7;
            let near_bottom = *tar < self.y_min + (1.0 - self.y_min) * 0.08;
            let pos = plotters::style::text_anchor::Pos::new(
                if near_right {
                    plotters::style::text_anchor::HPos::Right
                } else {
                    plotters::style::text_anchor::HPos::Left
                },
                if near_bottom {
                    plotters::style::text_anchor::VPos::Bottom
                } else {
                    plotters::style::text_anchor::VPos::Top
                },
            );
            let off = (
                if near_right { -8 } else { 8 },
                if near_bottom { -8 } else { 8 },
            );
            chart.draw_series(std::iter::once(
                EmptyElement::at((*far, *tar))
                    + Circle::new((0, 0), 5, c.filled())
                    + Circle::new((0, 0), 5, WHITE.stroke_width(1))
                    // White halo so the label stays readable across curves and grid lines.
                    + Text::new(text.clone(), (off.0 - 1, off.1), (FONT, 15).into_font().color(&WHITE).pos(pos))
                    + Text::new(text.clone(), (off.0 + 1, off.1), (FONT, 15).into_font().color(&WHITE).pos(pos))
                    + Text::new(text.clone(), (off.0, off.1 - 1), (FONT, 15).into_font().color(&WHITE).pos(pos))
                    + Text::new(text.clone(), (off.0, off.1 + 1), (FONT, 15).into_font().color(&WHITE).pos(pos))
                    + Text::new(text, off, (FONT, 15).into_font().color(&c).pos(pos)),
            ))?;
        }

        let span = -self.x_min.log10();
        let y_span = y_max - self.y_min;
        let norm = |(f, t): (f64, f64)| {
            (
                (f.log10() - self.x_min.log10()) / span,
                (t - self.y_min) / y_span,
            )
        };
        let mut lines: Vec<Vec<(f64, f64)>> = self
            .curves
            .iter()
            .map(|(_, v)| v.iter().copied().map(norm).collect())
            .collect();
        lines.extend(self.marks.iter().map(|m| vec![norm((m.1, m.2))]));
        let corner = pick_corner(
            &lines,
            &legend,
            &[
                Corner::LowerRight,
                Corner::UpperLeft,
                Corner::LowerLeft,
                Corner::UpperRight,
            ],
        );
        draw_legend(&chart.plotting_area().strip_coord_spec(), &legend, corner)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Histogram

struct HistFigure {
    title: String,
    lo: f64,
    hi: f64,
    /// (label, density per bin)
    classes: Vec<(String, Vec<f64>)>,
    thresholds: Vec<(String, f64)>,
    y_max: f64,
}

impl HistFigure {
    fn new(
        title: &str,
        genuine: &[f32],
        impostor: &[f32],
        thresholds: &[(&str, f32)],
        bins: usize,
    ) -> Self {
        let gen: Vec<f64> = genuine
            .iter()
            .map(|&v| v as f64)
            .filter(|v| v.is_finite())
            .collect();
        let imp: Vec<f64> = impostor
            .iter()
            .map(|&v| v as f64)
            .filter(|v| v.is_finite())
            .collect();
        let thr: Vec<(String, f64)> = thresholds
            .iter()
            .filter(|t| t.1.is_finite())
            .map(|(l, v)| (l.to_string(), *v as f64))
            .collect();

        let (mut lo, mut hi) = (-1.0f64, 1.0f64);
        if let Some((a, b)) = finite_range(
            gen.iter()
                .chain(&imp)
                .copied()
                .chain(thr.iter().map(|t| t.1)),
        ) {
            if a < lo || b > hi {
                let (a, b) = (a.min(lo), b.max(hi));
                let pad = (b - a) * 0.02;
                lo = if a < -1.0 { a - pad } else { a };
                hi = if b > 1.0 { b + pad } else { b };
            }
        }
        let width = (hi - lo) / bins as f64;
        let density = |vals: &[f64]| -> Vec<f64> {
            let mut counts = vec![0usize; bins];
            for &v in vals {
                let i = (((v - lo) / width).floor().max(0.0) as usize).min(bins - 1);
                counts[i] += 1;
            }
            let n = vals.len().max(1) as f64;
            counts.into_iter().map(|c| c as f64 / (n * width)).collect()
        };
        let mut classes = Vec::new();
        if !imp.is_empty() {
            classes.push((
                format!("different person (impostor), n={}", imp.len()),
                density(&imp),
            ));
        }
        if !gen.is_empty() {
            classes.push((
                format!("same person (genuine), n={}", gen.len()),
                density(&gen),
            ));
        }
        let y_max = classes
            .iter()
            .flat_map(|(_, d)| d.iter().copied())
            .fold(0.0f64, f64::max);
        // Headroom above the highest bar for the legend (upper left): one row per class and
        // threshold, so that bars never hide behind it.
        let rows = classes.len() + thr.len();
        let legend_h = ((12.0 + 16.0 + 22.0 * rows as f64) / AREA_H).min(0.6);
        let y_max = if y_max > 0.0 && y_max.is_finite() {
            y_max * 1.04 / (1.0 - legend_h)
        } else {
            1.0
        };
        HistFigure {
            title: title.to_string(),
            lo,
            hi,
            classes,
            thresholds: thr,
            y_max,
        }
    }
}

impl Figure for HistFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut b = chart_builder(root, &self.title)?;
        let mut chart = b.build_cartesian_2d(self.lo..self.hi, 0.0..self.y_max)?;
        chart
            .configure_mesh()
            .x_desc("cosine similarity")
            .y_desc("density (each class integrates to 1)")
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 15))
            .x_labels(11)
            .y_labels(8)
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(210, 210, 210))
            .draw()?;

        if self.classes.is_empty() {
            note(root, "no data")?;
        }
        let bins = self.classes.first().map_or(0, |c| c.1.len());
        let width = (self.hi - self.lo) / bins.max(1) as f64;
        let mut legend = Vec::new();
        for (label, dens) in &self.classes {
            let c = if label.starts_with("same") {
                COLORS[0]
            } else {
                COLORS[1]
            };
            chart.draw_series(dens.iter().enumerate().filter(|(_, &d)| d > 0.0).map(
                |(i, &d)| {
                    let x0 = self.lo + i as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width, d)], c.mix(0.35).filled())
                },
            ))?;
            // Step outline, so overlapping classes stay readable.
            let mut outline = Vec::with_capacity(2 * bins + 2);
            outline.push((self.lo, 0.0));
            for (i, &d) in dens.iter().enumerate() {
                let x0 = self.lo + i as f64 * width;
                outline.push((x0, d));
                outline.push((x0 + width, d));
            }
            outline.push((self.hi, 0.0));
            chart.draw_series(LineSeries::new(outline, c.stroke_width(2)))?;
            legend.push((label.clone(), Key::Patch(c)));
        }
        for (i, (label, v)) in self.thresholds.iter().enumerate() {
            let c = mark_color(i);
            let text = if label.is_empty() {
                format!("threshold {}", tick_label(*v))
            } else {
                format!("{label} = {}", tick_label(*v))
            };
            chart.draw_series(DashedLineSeries::new(
                vec![(*v, 0.0), (*v, self.y_max)],
                8,
                5,
                c.stroke_width(2),
            ))?;
            legend.push((text, Key::Dashed(c)));
        }
        draw_legend(
            &chart.plotting_area().strip_coord_spec(),
            &legend,
            Corner::UpperLeft,
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Line plot

struct LineFigure {
    title: String,
    x_label: String,
    y_label: String,
    series: Vec<(String, Vec<(f64, f64)>)>,
    x: (f64, f64),
    y: (f64, f64),
}

impl LineFigure {
    fn new(title: &str, x_label: &str, y_label: &str, series: &[(&str, &[(f64, f64)])]) -> Self {
        let series: Vec<(String, Vec<(f64, f64)>)> = series
            .iter()
            .map(|(l, pts)| {
                let v = pts
                    .iter()
                    .copied()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .collect();
                (l.to_string(), v)
            })
            .collect();
        let all = || series.iter().flat_map(|(_, v)| v.iter().copied());
        let x = finite_range(all().map(|p| p.0)).map_or((0.0, 1.0), |(a, b)| pad_range(a, b, 0.03));
        let y = finite_range(all().map(|p| p.1)).map_or((0.0, 1.0), |(a, b)| pad_range(a, b, 0.03));
        LineFigure {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            series,
            x,
            y,
        }
    }
}

impl Figure for LineFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut b = chart_builder(root, &self.title)?;
        let mut chart = b.build_cartesian_2d(self.x.0..self.x.1, self.y.0..self.y.1)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 15))
            .x_labels(10)
            .y_labels(10)
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(210, 210, 210))
            .draw()?;
        if self.series.iter().all(|(_, v)| v.is_empty()) {
            note(root, "no data")?;
            return Ok(());
        }
        let mut legend = Vec::new();
        for (i, (label, pts)) in self.series.iter().enumerate() {
            if pts.is_empty() {
                continue;
            }
            let c = color(i);
            if pts.iter().all(|p| *p == pts[0]) {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
            }
            chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?;
            if !label.is_empty() {
                legend.push((label.clone(), Key::Line(c)));
            }
        }
        let (xs, ys) = (self.x.1 - self.x.0, self.y.1 - self.y.0);
        let lines: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|(_, v)| {
                v.iter()
                    .map(|p| ((p.0 - self.x.0) / xs, (p.1 - self.y.0) / ys))
                    .collect()
            })
            .collect();
        let corner = pick_corner(
            &lines,
            &legend,
            &[
                Corner::UpperRight,
                Corner::LowerLeft,
                Corner::UpperLeft,
                Corner::LowerRight,
            ],
        );
        draw_legend(&chart.plotting_area().strip_coord_spec(), &legend, corner)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh empty directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> Self {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!(
                "faceprint-plot-{}-{}-{}",
                std::process::id(),
                n,
                name
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            // FACEPRINT_PLOT_KEEP=1 keeps the plots for looking at them.
            if std::env::var_os("FACEPRINT_PLOT_KEEP").is_none() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// Deterministic pseudo-normal samples (xorshift + Box-Muller).
    fn normal(n: usize, mean: f64, sd: f64, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        let mut unif = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (unif(), unif());
                let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
                (mean + sd * z).clamp(-1.0, 1.0) as f32
            })
            .collect()
    }

    fn roc_from(gen: &[f32], imp: &[f32]) -> Vec<RocPoint> {
        (0..=300)
            .map(|i| {
                let t = -0.5 + i as f32 * 0.005;
                RocPoint {
                    far: imp.iter().filter(|&&s| s >= t).count() as f64 / imp.len() as f64,
                    tar: gen.iter().filter(|&&s| s >= t).count() as f64 / gen.len() as f64,
                    threshold: t,
                }
            })
            .collect()
    }

    /// Both files exist, the SVG has the (escaped) title, the PNG decodes at 900x650 with a
    /// white background, a drawn chart, and dark text pixels in the title band.
    fn check_outputs(paths: &[PathBuf], title_in_svg: &str) {
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[0].extension().unwrap(), "svg");
        assert_eq!(paths[1].extension().unwrap(), "png");
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(
            svg.contains(title_in_svg),
            "title {title_in_svg:?} not in SVG"
        );
        assert!(svg.len() > 2000);
        let img = image::open(&paths[1]).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (PLOT_WIDTH, PLOT_HEIGHT));
        assert_eq!(img.get_pixel(2, 2).0, [255, 255, 255], "background");
        let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(non_white > 5_000, "only {non_white} drawn pixels");
        // Title text: dark pixels in the band above the plot, around the centre.
        let dark_title = (250..650)
            .flat_map(|x| (5..45).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 100))
            .count();
        assert!(
            dark_title > 100,
            "no rendered title text ({dark_title} dark pixels)"
        );
    }

    #[test]
    fn roc_plot_writes_svg_and_png() {
        let dir = TempDir::new("roc");
        let gen = normal(2000, 0.45, 0.14, 1);
        let imp = normal(20000, 0.02, 0.075, 2);
        let a = roc_from(&gen, &imp);
        let b: Vec<RocPoint> = a
            .iter()
            .map(|p| RocPoint {
                tar: (p.tar - 0.02).max(0.0),
                ..*p
            })
            .collect();
        let paths = roc_plot(
            &dir.0.join("roc"),
            "ROC <test> & co",
            &[("faceprint", &a), ("reference", &b)],
            &[("FAR 1e-3", 1e-3, 0.9), ("FAR 0", 0.0, 0.8)],
        )
        .unwrap();
        check_outputs(&paths, "ROC &lt;test&gt; &amp; co");
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        for s in [
            "faceprint",
            "reference",
            "FAR 1e-3",
            "1e-4",
            "false accept rate",
        ] {
            assert!(svg.contains(s), "{s} not in SVG");
        }
    }

    #[test]
    fn large_roc_is_thinned() {
        let dir = TempDir::new("big");
        // 1M points along a smooth curve.
        let pts: Vec<RocPoint> = (0..1_000_000)
            .map(|i| {
                let far = 10f64.powf(-6.0 + 6.0 * i as f64 / 999_999.0);
                RocPoint {
                    far,
                    tar: 1.0 - 0.2 * (1.0 - far).powi(3),
                    threshold: 0.0,
                }
            })
            .collect();
        let p = roc_plot(&dir.0.join("big"), "big", &[("big", &pts)], &[]).unwrap();
        let size = std::fs::metadata(&p[0]).unwrap().len();
        assert!(size < 200_000, "SVG of {size} bytes");
        check_outputs(&p, "big");
    }

    #[test]
    fn prefix_keeps_dots() {
        let dir = TempDir::new("dots");
        let paths = line_plot(
            &dir.0.join("run.v1"),
            "dots",
            "x",
            "y",
            &[("s", &[(0.0, 1.0), (1.0, 2.0)])],
        )
        .unwrap();
        assert_eq!(paths[0], dir.0.join("run.v1.svg"));
        assert_eq!(paths[1], dir.0.join("run.v1.png"));
    }

    #[test]
    fn histogram_writes_svg_and_png() {
        let dir = TempDir::new("hist");
        let gen = normal(3000, 0.6, 0.12, 3);
        let imp = normal(50000, 0.0, 0.08, 4);
        let paths = similarity_histogram(
            &dir.0.join("hist"),
            "Similarities",
            &gen,
            &imp,
            &[("t@FAR1e-3", 0.3), ("t@FAR1e-2", 0.2)],
            80,
        )
        .unwrap();
        check_outputs(&paths, "Similarities");
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        for s in ["n=3000", "n=50000", "t@FAR1e-3 = 0.3", "cosine similarity"] {
            assert!(svg.contains(s), "{s} not in SVG");
        }
    }

    #[test]
    fn line_plot_writes_svg_and_png() {
        let dir = TempDir::new("line");
        let a: Vec<(f64, f64)> = (0..=20)
            .map(|i| (i as f64 / 20.0, 1.0 - (i as f64 / 20.0).powi(2)))
            .collect();
        let paths = line_plot(
            &dir.0.join("pr"),
            "Precision/recall",
            "recall",
            "precision",
            &[("A", &a)],
        )
        .unwrap();
        check_outputs(&paths, "Precision/recall");
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        assert!(svg.contains("recall") && svg.contains("precision"));
    }

    #[test]
    fn empty_inputs_give_empty_charts() {
        let dir = TempDir::new("empty");
        let p = roc_plot(&dir.0.join("roc"), "empty roc", &[], &[]).unwrap();
        check_outputs(&p, "empty roc");
        assert!(std::fs::read_to_string(&p[0]).unwrap().contains("no data"));
        let p = roc_plot(&dir.0.join("roc2"), "empty curve", &[("x", &[])], &[]).unwrap();
        assert!(std::fs::read_to_string(&p[0]).unwrap().contains("no data"));
        let p = similarity_histogram(&dir.0.join("h"), "empty hist", &[], &[], &[], 50).unwrap();
        check_outputs(&p, "empty hist");
        assert!(std::fs::read_to_string(&p[0]).unwrap().contains("no data"));
        let p = line_plot(&dir.0.join("l"), "empty line", "x", "y", &[]).unwrap();
        check_outputs(&p, "empty line");
        let p = line_plot(&dir.0.join("l2"), "empty series", "x", "y", &[("s", &[])]).unwrap();
        assert!(std::fs::read_to_string(&p[0]).unwrap().contains("no data"));
        // Only one class.
        let p = similarity_histogram(&dir.0.join("h2"), "one class", &[0.5, 0.6], &[], &[], 10)
            .unwrap();
        check_outputs(&p, "one class");
    }

    #[test]
    fn nan_and_degenerate_values_do_not_panic() {
        let dir = TempDir::new("edge");
        let nan = f64::NAN;
        // NaN, infinities, FAR 0, FAR/TAR out of [0, 1], unsorted, all FAR 0.
        let pts = [
            RocPoint {
                far: 0.0,
                tar: 0.5,
                threshold: 0.9,
            },
            RocPoint {
                far: nan,
                tar: 0.7,
                threshold: 0.8,
            },
            RocPoint {
                far: 0.5,
                tar: nan,
                threshold: 0.1,
            },
            RocPoint {
                far: 1.5,
                tar: 1.2,
                threshold: -1.0,
            },
            RocPoint {
                far: 1e-6,
                tar: 0.6,
                threshold: 0.7,
            },
            RocPoint {
                far: f64::INFINITY,
                tar: 0.6,
                threshold: 0.7,
            },
            RocPoint {
                far: 0.01,
                tar: 0.9,
                threshold: 0.3,
            },
        ];
        let zeros = [RocPoint {
            far: 0.0,
            tar: 0.3,
            threshold: 1.0,
        }; 3];
        let single = [RocPoint {
            far: 0.2,
            tar: 0.99,
            threshold: 0.1,
        }];
        let p = roc_plot(
            &dir.0.join("roc"),
            "edge roc",
            &[
                ("mixed", &pts),
                ("zeros", &zeros),
                ("single", &single),
                ("", &[]),
            ],
            &[
                ("nan", nan, 0.5),
                ("zero", 0.0, 0.0),
                ("one", 1.0, 1.0),
                ("", 0.001, 0.95),
            ],
        )
        .unwrap();
        check_outputs(&p, "edge roc");
        // Everything above 0.5: zoomed y axis; all FAR equal to 1.
        let high = [RocPoint {
            far: 1.0,
            tar: 0.98,
            threshold: 0.0,
        }; 2];
        roc_plot(&dir.0.join("roc2"), "high", &[("h", &high)], &[]).unwrap();
        // Only NaN.
        let nans = [RocPoint {
            far: nan,
            tar: nan,
            threshold: f32::NAN,
        }];
        let p = roc_plot(
            &dir.0.join("roc3"),
            "nans",
            &[("n", &nans)],
            &[("m", nan, nan)],
        )
        .unwrap();
        assert!(std::fs::read_to_string(&p[0]).unwrap().contains("no data"));

        // Histogram: NaN and infinities skipped, all-equal values, values and thresholds
        // outside [-1, 1], one bin, NaN threshold.
        let g = [f32::NAN, 0.5, 0.5, 0.5, f32::INFINITY];
        let i = [0.5f32; 4];
        similarity_histogram(
            &dir.0.join("h1"),
            "equal",
            &g,
            &i,
            &[("t", 0.5), ("nan", f32::NAN)],
            1,
        )
        .unwrap();
        let p = similarity_histogram(
            &dir.0.join("h2"),
            "wide",
            &[3.0, 4.0],
            &[-2.5],
            &[("t", 5.0)],
            30,
        )
        .unwrap();
        check_outputs(&p, "wide");
        similarity_histogram(&dir.0.join("h3"), "nan", &[f32::NAN], &[f32::NAN], &[], 10).unwrap();
        similarity_histogram(
            &dir.0.join("h4"),
            "many bins",
            &[0.1, 0.2],
            &[0.0],
            &[],
            100_000,
        )
        .unwrap();

        // Line plot: NaN skipped, all-equal x and y, a single point, huge and tiny values.
        line_plot(
            &dir.0.join("l1"),
            "equal",
            "x",
            "y",
            &[("eq", &[(1.0, 2.0), (1.0, 2.0)])],
        )
        .unwrap();
        line_plot(
            &dir.0.join("l2"),
            "nan",
            "x",
            "y",
            &[("n", &[(nan, 1.0), (0.5, nan), (0.2, 0.3)])],
        )
        .unwrap();
        line_plot(
            &dir.0.join("l3"),
            "scale",
            "x",
            "y",
            &[
                ("big", &[(0.0, 1e12), (1e-9, -1e12)]),
                ("zero", &[(0.0, 0.0), (0.0, 0.0)]),
            ],
        )
        .unwrap();
    }

    #[test]
    fn bad_arguments_are_errors() {
        let dir = TempDir::new("err");
        let e = similarity_histogram(&dir.0.join("h"), "t", &[0.1], &[0.2], &[], 0).unwrap_err();
        assert!(matches!(e, PlotError::InvalidArgument(_)), "{e}");
        let e = line_plot(&dir.0.join("missing/dir/p"), "t", "x", "y", &[]).unwrap_err();
        assert!(matches!(e, PlotError::Io { .. }), "{e}");
        assert!(e.to_string().contains("p.svg"), "{e}");
    }

    /// Without any font (fontconfig pointed at an empty configuration, in a child process since
    /// fontconfig and plotters cache fonts per process): no panic, the SVG is written with
    /// estimated text layout, and the PNG gives PlotError::Font.
    #[test]
    fn missing_fonts_give_error_and_svg() {
        let dir = TempDir::new("nofont");
        let conf = dir.0.join("fonts.conf");
        std::fs::write(
            &conf,
            format!(
                "<?xml version=\"1.0\"?>\n<fontconfig><cachedir>{}</cachedir></fontconfig>\n",
                dir.0.join("cache").display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "plot::tests::no_font_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FONTCONFIG_FILE", &conf)
            .env("FACEPRINT_PLOT_NOFONT_DIR", &dir.0)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
    }

    #[test]
    #[ignore = "run by missing_fonts_give_error_and_svg in a process without fonts"]
    fn no_font_child() {
        let dir = PathBuf::from(std::env::var_os("FACEPRINT_PLOT_NOFONT_DIR").unwrap());
        let gen = normal(500, 0.5, 0.1, 5);
        let imp = normal(5000, 0.0, 0.1, 6);
        let roc = roc_from(&gen, &imp);
        let results = [
            roc_plot(
                &dir.join("roc"),
                "nofont roc",
                &[("a", &roc)],
                &[("m", 0.01, 0.9)],
            ),
            similarity_histogram(
                &dir.join("hist"),
                "nofont hist",
                &gen,
                &imp,
                &[("t", 0.3)],
                40,
            ),
            line_plot(
                &dir.join("line"),
                "nofont line",
                "x",
                "y",
                &[("s", &[(0.0, 0.0), (1.0, 1.0)])],
            ),
        ];
        for (r, name) in results.into_iter().zip(["roc", "hist", "line"]) {
            match r {
                Err(PlotError::Font { path, svg, .. }) => {
                    assert_eq!(path, dir.join(format!("{name}.png")));
                    assert!(!path.exists());
                    let text = std::fs::read_to_string(&svg).unwrap();
                    assert!(text.contains(&format!("nofont {name}")));
                    assert!(text.trim_end().ends_with("</svg>"));
                }
                other => panic!("{name}: expected a font error, got {other:?}"),
            }
        }
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(1e-4), "1e-4");
        assert_eq!(tick_label(0.001), "0.001");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(-0.2), "-0.2");
        assert_eq!(tick_label(1.0), "1");
        assert_eq!(tick_label(2.5e6), "2.5e6");
        assert_eq!(tick_label(-1e-12), "-1e-12");
    }
}
