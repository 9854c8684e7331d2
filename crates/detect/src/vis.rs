//! Annotated images (`nsod infer --save-vis`): each detection drawn as its polygon (OBB) or rectangle, with a
//! label `class score` in an 8x8 bitmap font (font8x8), one colour per class (Ultralytics' palette).

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_line_segment_mut};
use imageproc::rect::Rect;
use nsod_types::Detection;

/// Ultralytics' default 20-colour palette.
const PALETTE: [[u8; 3]; 20] = [
    [4, 42, 255],
    [11, 219, 235],
    [243, 243, 243],
    [0, 223, 183],
    [17, 31, 104],
    [255, 111, 221],
    [255, 68, 79],
    [204, 237, 0],
    [0, 243, 68],
    [189, 0, 255],
    [0, 180, 255],
    [221, 0, 186],
    [0, 255, 255],
    [38, 192, 0],
    [1, 255, 179],
    [125, 36, 255],
    [123, 0, 104],
    [255, 27, 108],
    [252, 109, 47],
    [162, 255, 11],
];

/// The colour of a class.
pub fn class_color(class_id: u32) -> Rgb<u8> {
    Rgb(PALETTE[class_id as usize % PALETTE.len()])
}

/// Draws a polyline (a track's trail) onto `img`; points that are not finite are skipped.
pub fn draw_polyline(img: &mut RgbImage, points: &[(f32, f32)], color: Rgb<u8>) {
    for w in points.windows(2) {
        if [w[0].0, w[0].1, w[1].0, w[1].1]
            .iter()
            .all(|v| v.is_finite())
        {
            draw_line_segment_mut(img, w[0], w[1], color);
        }
    }
}

/// Draws every detection onto `img`; lines are `thickness` pixels wide (at least 1).
pub fn draw_detections(img: &mut RgbImage, detections: &[Detection], thickness: u32) {
    if img.width() == 0 || img.height() == 0 {
        return;
    }
    for d in detections {
        let color = class_color(d.class_id);
        let pts: Vec<(f32, f32)> = match d.obb {
            Some(o) => o
                .corners()
                .iter()
                .map(|p| (p.x as f32, p.y as f32))
                .collect(),
            None => vec![
                (d.bbox.x1, d.bbox.y1),
                (d.bbox.x2, d.bbox.y1),
                (d.bbox.x2, d.bbox.y2),
                (d.bbox.x1, d.bbox.y2),
            ],
        };
        if pts.iter().any(|p| !p.0.is_finite() || !p.1.is_finite()) {
            continue;
        }
        let t = thickness.max(1) as i32;
        for i in 0..pts.len() {
            let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
            for k in 0..t {
                let o = (k - t / 2) as f32;
                draw_line_segment_mut(img, (a.0 + o, a.1), (b.0 + o, b.1), color);
                draw_line_segment_mut(img, (a.0, a.1 + o), (b.0, b.1 + o), color);
            }
        }
        // Label above the top-most corner (below it when that would leave the image).
        let (lx, ly) = pts.iter().fold((f32::MAX, f32::MAX), |acc, p| {
            if p.1 < acc.1 { (p.0, p.1) } else { acc }
        });
        let text = format!("{} {:.2}", d.class_name, d.score);
        let (w, h) = (text.chars().count() as i32 * 8 + 2, 10);
        let x = (lx as i32).clamp(0, (img.width() as i32 - w).max(0));
        let y = if ly as i32 - h >= 0 {
            ly as i32 - h
        } else {
            (ly as i32).clamp(0, (img.height() as i32 - h).max(0))
        };
        draw_filled_rect_mut(img, Rect::at(x, y).of_size(w as u32, h as u32), color);
        let ink =
            if u32::from(color[0]) * 299 + u32::from(color[1]) * 587 + u32::from(color[2]) * 114
                > 128_000
            {
                Rgb([0, 0, 0])
            } else {
                Rgb([255, 255, 255])
            };
        draw_text(img, x + 1, y + 1, &text, ink);
    }
}

/// Writes `text` with its top-left corner at `(x, y)`; characters without a glyph are drawn as `?`.
fn draw_text(img: &mut RgbImage, x: i32, y: i32, text: &str, color: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS
            .get(ch)
            .or_else(|| font8x8::BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let (px, py) = (x + i as i32 * 8 + col, y + row as i32);
                    if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height()
                    {
                        img.put_pixel(px as u32, py as u32, color);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsod_types::{BBox, OrientedBox};

    #[test]
    fn draws_box_outline_and_label() {
        let mut img = RgbImage::from_pixel(200, 100, Rgb([0, 0, 0]));
        let d = Detection::new(0, "plane", 0.5, BBox::new(20.0, 40.0, 60.0, 80.0));
        draw_detections(&mut img, &[d], 1);
        let c = class_color(0);
        assert_eq!(*img.get_pixel(20, 60), c); // left edge
        assert_eq!(*img.get_pixel(40, 80), c); // bottom edge
        assert_eq!(*img.get_pixel(40, 60), Rgb([0, 0, 0])); // inside untouched
        // The label box sits above the top edge: 10 px high, 8 px per character of "plane 0.50" + 2.
        assert_eq!(*img.get_pixel(20, 30), c);
        assert_eq!(*img.get_pixel(20 + 81, 30), c);
        assert_eq!(*img.get_pixel(20 + 82, 30), Rgb([0, 0, 0]));
        // Text pixels in white on the dark blue of class 0.
        let label = (20..102).flat_map(|x| (31..39).map(move |y| (x, y)));
        assert!(
            label
                .filter(|&(x, y)| *img.get_pixel(x, y) == Rgb([255, 255, 255]))
                .count()
                > 40
        );
    }

    #[test]
    fn oriented_boxes_and_boxes_outside_the_image_are_safe() {
        let mut img = RgbImage::new(50, 50);
        let dets = vec![
            Detection::oriented(
                3,
                "baseball diamond",
                0.9,
                OrientedBox::new(25.0, 25.0, 30.0, 10.0, 0.7),
            ),
            Detection::new(1, "ship", 0.3, BBox::new(-100.0, -100.0, 500.0, 500.0)),
            Detection::new(1, "ship", 0.3, BBox::new(f32::NAN, 0.0, 1.0, 1.0)),
        ];
        draw_detections(&mut img, &dets, 3);
        let corner = dets[0].obb.unwrap().corners()[0];
        assert_eq!(
            *img.get_pixel(corner.x.round() as u32, corner.y.round() as u32),
            class_color(3)
        );
        draw_detections(&mut RgbImage::new(0, 0), &dets, 1);
    }
}
