//! The stylesheet, compiled into the binary, with the player's terminal palette generated.

use axum::http::header;
use axum::response::{IntoResponse, Response};

pub(crate) async fn stylesheet() -> Response {
    static CSS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let css = CSS.get_or_init(|| format!("{}{}", include_str!("app.css"), terminal_palette()));
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        css.as_str(),
    )
        .into_response()
}

/// The xterm-256 palette as `.f<n>` (text) and `.b<n>` (background) classes for the player.
fn terminal_palette() -> String {
    const BASIC: [(u8, u8, u8); 16] = [
        (0, 0, 0),
        (205, 0, 0),
        (0, 205, 0),
        (205, 205, 0),
        (0, 0, 238),
        (205, 0, 205),
        (0, 205, 205),
        (229, 229, 229),
        (127, 127, 127),
        (255, 0, 0),
        (0, 255, 0),
        (255, 255, 0),
        (92, 92, 255),
        (255, 0, 255),
        (0, 255, 255),
        (255, 255, 255),
    ];
    let level = |i: u16| -> u8 {
        if i == 0 {
            0
        } else {
            u8::try_from(55 + 40 * i).unwrap_or(255)
        }
    };
    let mut css = String::from("\n/* xterm-256 palette (generated) */\n");
    for n in 0u16..256 {
        let (r, g, b) = match n {
            0..16 => BASIC[usize::from(n)],
            16..232 => {
                let c = n - 16;
                (level(c / 36), level((c / 6) % 6), level(c % 6))
            }
            _ => {
                let v = u8::try_from(8 + 10 * (n - 232)).unwrap_or(255);
                (v, v, v)
            }
        };
        css.push_str(&format!(
            ".terminal .f{n}{{color:#{r:02x}{g:02x}{b:02x}}}.terminal .b{n}{{background:#{r:02x}{g:02x}{b:02x}}}\n"
        ));
    }
    css
}
