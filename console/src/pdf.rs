//! The monthly report as PDF (issue #18): A4 pages of text in the hospital's language with a
//! Japanese font embedded (so that it reads the same on any machine, and `pdftotext` gets the
//! text back), and the same bar charts as the HTML version, drawn by plotters through a small
//! drawing backend that writes PDF operations.

use std::path::{Path, PathBuf};

use plotters::prelude::IntoDrawingArea;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};
use printpdf::{
    Color, FontId, Line, LinePoint, Mm, Op, PaintMode, ParsedFont, PdfDocument, PdfFontHandle,
    PdfPage, PdfSaveOptions, Point, Polygon, PolygonRing, Pt, Rgb, TextItem, WindingOrder,
};
use sekisho_domain::report::MonthlyReport;
use sekisho_domain::zone::DisplayZone;

use crate::i18n::{Lang, T};

/// Where a Japanese font is looked for when none is configured (Debian's packages).
pub const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
];

/// The font file to embed: `configured`, or the first of [`FONT_CANDIDATES`] that exists.
///
/// # Errors
/// What to do when there is none.
pub fn font_file(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = configured {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(format!("the report font {} does not exist", p.display()))
        };
    }
    FONT_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "no Japanese font for the PDF report: install fonts-ipafont-gothic, or set [report] font".into()
        })
}

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 15.0;

/// A drawing backend for plotters that appends PDF operations for a chart placed with its
/// top-left corner at `origin` (mm from the page's bottom-left), `scale` mm per pixel.
struct PdfBackend<'a> {
    ops: &'a mut Vec<Op>,
    font: FontId,
    origin: (f32, f32),
    size: (u32, u32),
    scale: f32,
}

fn color(c: BackendColor) -> Color {
    let f = |v: u8| f32::from(v) / 255.0;
    Color::Rgb(Rgb {
        r: f(c.rgb.0),
        g: f(c.rgb.1),
        b: f(c.rgb.2),
        icc_profile: None,
    })
}

impl PdfBackend<'_> {
    fn point(&self, (x, y): BackendCoord) -> Point {
        Point {
            x: Mm(self.origin.0 + x as f32 * self.scale).into(),
            y: Mm(self.origin.1 - y as f32 * self.scale).into(),
        }
    }

    fn line_point(&self, c: BackendCoord) -> LinePoint {
        LinePoint {
            p: self.point(c),
            bezier: false,
        }
    }
}

impl DrawingBackend for PdfBackend<'_> {
    type ErrorType = std::fmt::Error;

    fn get_size(&self) -> (u32, u32) {
        self.size
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        Ok(())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        Ok(())
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        c: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.draw_rect(point, (point.0 + 1, point.1 + 1), &c, true)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        if style.color().alpha <= 0.0 {
            return Ok(());
        }
        let line = Line {
            points: vec![self.line_point(from), self.line_point(to)],
            is_closed: false,
        };
        self.ops.push(Op::SetOutlineColor {
            col: color(style.color()),
        });
        self.ops.push(Op::SetOutlineThickness {
            pt: Pt(style.stroke_width().max(1) as f32 * self.scale * 2.0),
        });
        self.ops.push(Op::DrawLine { line });
        Ok(())
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        ul: BackendCoord,
        br: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        if style.color().alpha <= 0.0 {
            return Ok(());
        }
        let points = vec![
            self.line_point(ul),
            self.line_point((br.0, ul.1)),
            self.line_point(br),
            self.line_point((ul.0, br.1)),
        ];
        let col = color(style.color());
        self.ops.push(if fill {
            Op::SetFillColor { col }
        } else {
            Op::SetOutlineColor { col }
        });
        self.ops.push(Op::DrawPolygon {
            polygon: Polygon {
                rings: vec![PolygonRing { points }],
                mode: if fill {
                    PaintMode::Fill
                } else {
                    PaintMode::Stroke
                },
                winding_order: WindingOrder::NonZero,
            },
        });
        Ok(())
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        // Place by an estimate of the width: half the size per character, a whole one for
        // wide (CJK) characters.
        let size = style.size() as f32;
        let width: f32 = text
            .chars()
            .map(|c| if c.is_ascii() { size * 0.55 } else { size })
            .sum();
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => width / 2.0,
            HPos::Right => width,
        };
        let dy = match anchor.v_pos {
            VPos::Top => size * 0.8,
            VPos::Center => size * 0.35,
            VPos::Bottom => 0.0,
        };
        let at = Point {
            x: Mm(self.origin.0 + (pos.0 as f32 - dx) * self.scale).into(),
            y: Mm(self.origin.1 - (pos.1 as f32 + dy) * self.scale).into(),
        };
        self.ops.push(Op::SetFillColor {
            col: color(style.color()),
        });
        self.ops.extend([
            Op::StartTextSection,
            Op::SetFont {
                font: PdfFontHandle::External(self.font.clone()),
                size: Pt(size * self.scale / 0.3528),
            },
            Op::SetTextCursor { pos: at },
            Op::ShowText {
                items: vec![TextItem::Text(text.to_owned())],
            },
            Op::EndTextSection,
        ]);
        Ok(())
    }
}

/// Pages of text and charts, top to bottom.
struct Writer {
    pages: Vec<Vec<Op>>,
    ops: Vec<Op>,
    font: FontId,
    /// mm from the bottom of the page.
    y: f32,
}

impl Writer {
    fn room(&mut self, mm: f32) {
        if self.y - mm < MARGIN {
            self.pages.push(std::mem::take(&mut self.ops));
            self.y = PAGE_H - MARGIN;
        }
    }

    fn text(&mut self, text: &str, size: f32, indent: f32) {
        let line = size * 0.3528 * 1.5;
        self.room(line);
        self.y -= line;
        self.ops.extend([
            Op::SetFillColor {
                col: Color::Rgb(Rgb {
                    r: 0.0,
                    g: 0.0,
                    b: 0.0,
                    icc_profile: None,
                }),
            },
            Op::StartTextSection,
            Op::SetFont {
                font: PdfFontHandle::External(self.font.clone()),
                size: Pt(size),
            },
            Op::SetTextCursor {
                pos: Point {
                    x: Mm(MARGIN + indent).into(),
                    y: Mm(self.y).into(),
                },
            },
            Op::ShowText {
                items: vec![TextItem::Text(text.to_owned())],
            },
            Op::EndTextSection,
        ]);
    }

    fn heading(&mut self, text: &str) {
        self.room(16.0);
        self.y -= 3.0;
        self.text(text, 13.0, 0.0);
    }

    fn chart(&mut self, title: &str, bars: &[(String, f64)]) {
        let (w, h) = (640u32, 250u32);
        let scale = (PAGE_W - 2.0 * MARGIN) / w as f32;
        let height = h as f32 * scale;
        self.room(height + 4.0);
        self.y -= 2.0;
        let backend = PdfBackend {
            ops: &mut self.ops,
            font: self.font.clone(),
            origin: (MARGIN, self.y),
            size: (w, h),
            scale,
        };
        crate::report::draw_bars(backend.into_drawing_area(), title, bars);
        self.y -= height;
    }
}

/// The report as a PDF document, its text in `lang`, `font` (a TrueType or OpenType file's
/// bytes) embedded.
///
/// # Errors
/// A font that cannot be read.
pub fn document(
    r: &MonthlyReport,
    zone: &DisplayZone,
    lang: Lang,
    font: &[u8],
) -> Result<Vec<u8>, String> {
    let t = |k: T| k.get(lang);
    let mut warnings = vec![];
    let parsed = ParsedFont::from_bytes(font, 0, &mut warnings)
        .ok_or_else(|| "the report font cannot be read".to_owned())?;
    let title = crate::report::title(r, lang);
    let mut doc = PdfDocument::new(&title);
    let font = doc.add_font(&parsed);
    let mut w = Writer {
        pages: vec![],
        ops: vec![],
        font,
        y: PAGE_H - MARGIN,
    };
    w.text(&title, 18.0, 0.0);
    if r.empty {
        w.text(t(T::ReportEmpty), 11.0, 0.0);
    }
    w.heading(t(T::ReportSummary));
    let refusals: u64 = r.refusals.iter().map(|c| c.count).sum();
    for (k, v) in [
        (T::ReportSessions, r.sessions.to_string()),
        (T::ReportHours, format!("{:.2}", r.hours)),
        (T::ReportEmergencies, r.emergencies.len().to_string()),
        (T::ReportRefusals, refusals.to_string()),
    ] {
        w.text(&format!("{}: {v}", t(k)), 11.0, 4.0);
    }
    let (vendors, days) = crate::report::chart_bars(r);
    if !vendors.is_empty() {
        w.chart(t(T::ReportSessionsPerVendor), &vendors);
    }
    w.chart(t(T::ReportSessionsPerDay), &days);
    for (title, rows) in [
        (T::ReportByVendor, &r.by_vendor),
        (T::ReportByTarget, &r.by_target),
        (T::ReportByLevel, &r.by_level),
    ] {
        w.heading(t(title));
        for x in rows {
            w.text(
                &format!(
                    "{}: {} {} / {:.2} {}",
                    x.key,
                    x.sessions,
                    t(T::ReportSessions),
                    x.hours,
                    t(T::ReportHours)
                ),
                10.0,
                4.0,
            );
        }
    }
    w.heading(t(T::ReportEmergencies));
    for e in &r.emergencies {
        let delay = e.approval_delay_hours.map_or_else(
            || t(T::ReportNotApproved).to_owned(),
            |h| format!("{h:.2} h"),
        );
        w.text(
            &format!(
                "R-{} {} {} {} — {}: {delay}",
                e.request_number,
                e.vendor,
                e.target,
                zone.date_time(e.used_at),
                t(T::ReportApprovalDelay)
            ),
            10.0,
            4.0,
        );
    }
    w.heading(t(T::ReportRefusalsByReason));
    for c in &r.refusals {
        w.text(&format!("{}: {}", c.key, c.count), 10.0, 4.0);
    }
    w.heading(t(T::ReportReviews));
    for (k, v) in [
        (T::ReportReviewedInTime, r.reviews.in_time),
        (T::ReportReviewedLate, r.reviews.late),
        (T::ReportReviewPending, r.reviews.pending),
        (T::ReviewOverdueBadge, r.reviews.overdue),
    ] {
        w.text(&format!("{}: {v}", t(k)), 10.0, 4.0);
    }
    w.heading(t(T::FilesTransferred));
    let f = &r.files;
    w.text(
        &format!("{}: {} ({} B)", t(T::Upload), f.uploads, f.upload_bytes),
        10.0,
        4.0,
    );
    w.text(
        &format!(
            "{}: {} ({} B)",
            t(T::Download),
            f.downloads,
            f.download_bytes
        ),
        10.0,
        4.0,
    );
    w.text(
        &format!("{}: {}", t(T::ReportBlocked), f.blocked),
        10.0,
        4.0,
    );
    w.heading(t(T::ReportLapsing));
    for l in &r.attestations_expiring {
        w.text(
            &format!(
                "{}: {} — {}",
                t(T::Attestation),
                l.name,
                zone.date_time(l.at)
            ),
            10.0,
            4.0,
        );
    }
    for l in &r.contracts_expiring {
        w.text(
            &format!("{}: {} — {}", t(T::Contract), l.name, zone.date_time(l.at)),
            10.0,
            4.0,
        );
    }
    for u in &r.unused_accounts {
        let last = u
            .last_seen
            .map_or_else(|| "—".to_owned(), |at| zone.date_time(at));
        w.text(
            &format!(
                "{}: {} ({}) — {last}",
                t(T::ReportUnused),
                u.username,
                u.vendor
            ),
            10.0,
            4.0,
        );
    }
    for l in &r.lines_not_reviewed {
        w.text(&format!("{}: {l}", t(T::Lines)), 10.0, 4.0);
    }
    w.pages.push(std::mem::take(&mut w.ops));
    let pages = w
        .pages
        .into_iter()
        .map(|ops| PdfPage::new(Mm(PAGE_W), Mm(PAGE_H), ops))
        .collect();
    Ok(doc
        .with_pages(pages)
        .save(&PdfSaveOptions::default(), &mut Vec::new()))
}
