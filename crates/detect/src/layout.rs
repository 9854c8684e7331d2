//! Output layouts of Ultralytics models and their decoding into candidate detections.

use nsod_types::{BBox, ClassNames, Detection, OrientedBox};

/// How a model's first output is laid out (without the batch axis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// YOLOv8/YOLO11 detect: `[4 + nc, N]` rows cx, cy, w, h, class scores.
    Detect { nc: usize },
    /// YOLOv8/YOLO11 OBB: `[4 + nc + 1, N]`, the last row the angle in radians.
    Obb { nc: usize },
    /// End-to-end detect (YOLOv10, YOLO26): `[K, 6]` rows x1, y1, x2, y2, score, class.
    EndToEndDetect,
    /// End-to-end OBB (YOLO26): `[K, 7]` rows cx, cy, w, h, score, class, angle.
    EndToEndObb,
    /// YOLOv5 detect: `[N, 5 + nc]` rows cx, cy, w, h, objectness, class scores.
    Yolov5 { nc: usize },
}

impl Layout {
    /// Recognises the layout from the output shape `[B, d1, d2]` (`-1` for a dynamic axis), the number of class
    /// names (if known), the task and the end-to-end flag from the metadata.
    pub fn recognise(
        shape: &[i64],
        nc: Option<usize>,
        obb: bool,
        end2end: Option<bool>,
    ) -> Result<Self, String> {
        let describe = || format!("output shape {shape:?}");
        let [_, d1, d2] = shape else {
            return Err(format!("{}: expected 3 axes [batch, a, b]", describe()));
        };
        let (d1, d2) = (*d1, *d2);
        let known = |d: i64| (d > 0).then_some(d as usize);
        let is_e2e_shape = matches!(known(d2), Some(6 | 7)) && end2end != Some(false);
        let channels_first_nc = |extra: usize| {
            known(d1)
                .and_then(|c| c.checked_sub(extra))
                .filter(|&n| n > 0)
        };
        if end2end == Some(true)
            || (is_e2e_shape
                && nc.is_none_or(|n| known(d1) != Some(4 + n) && known(d1) != Some(5 + n)))
        {
            return match known(d2) {
                Some(6) if !obb => Ok(Self::EndToEndDetect),
                Some(7) => Ok(Self::EndToEndObb),
                _ => Err(format!(
                    "{}: an end-to-end model must output [batch, K, 6] (detect) or [batch, K, 7] (obb)",
                    describe()
                )),
            };
        }
        match nc {
            Some(n) if obb && known(d1) == Some(5 + n) => Ok(Self::Obb { nc: n }),
            Some(n) if !obb && known(d1) == Some(4 + n) => Ok(Self::Detect { nc: n }),
            Some(n) if !obb && known(d2) == Some(5 + n) => Ok(Self::Yolov5 { nc: n }),
            Some(n) => Err(format!(
                "{}: does not fit {n} classes for a {} model ([batch, {}, N] expected)",
                describe(),
                if obb { "obb" } else { "detect" },
                if obb { n + 5 } else { n + 4 }
            )),
            None if obb => channels_first_nc(5)
                .map(|nc| Self::Obb { nc })
                .ok_or_else(describe),
            None => match (known(d1), known(d2)) {
                (Some(a), Some(b)) if a > b => b
                    .checked_sub(5)
                    .filter(|&n| n > 0)
                    .map(|nc| Self::Yolov5 { nc })
                    .ok_or_else(describe),
                _ => channels_first_nc(4)
                    .map(|nc| Self::Detect { nc })
                    .ok_or_else(describe),
            },
        }
    }

    /// True for layouts whose boxes are rotated.
    pub fn is_oriented(&self) -> bool {
        matches!(self, Self::Obb { .. } | Self::EndToEndObb)
    }

    /// True when the model already applied NMS.
    pub fn is_end_to_end(&self) -> bool {
        matches!(self, Self::EndToEndDetect | Self::EndToEndObb)
    }

    /// Decodes one image's output (`data` without the batch axis, `dims` = `[d1, d2]`) into candidates with
    /// score `> conf`, in model-input pixels. End-to-end layouts keep at most `max_det` rows, in output order.
    pub fn decode(
        &self,
        data: &[f32],
        dims: [usize; 2],
        conf: f32,
        names: &ClassNames,
        max_det: usize,
    ) -> Result<Vec<Detection>, String> {
        let [d1, d2] = dims;
        if data.len() != d1 * d2 {
            return Err(format!(
                "output has {} values, expected {d1} x {d2}",
                data.len()
            ));
        }
        let name = |c: usize| names.name_or_id(c as u32);
        let mut out = Vec::new();
        match *self {
            Self::Detect { nc } | Self::Obb { nc } => {
                let oriented = matches!(self, Self::Obb { .. });
                if d1 != 4 + nc + usize::from(oriented) {
                    return Err(format!(
                        "output has {d1} rows, expected {}",
                        4 + nc + usize::from(oriented)
                    ));
                }
                let n = d2;
                let row = |r: usize| &data[r * n..(r + 1) * n];
                // Best class per anchor, scanning one class row at a time (contiguous memory).
                let mut best = row(4).to_vec();
                let mut best_c = vec![0u16; n];
                for c in 1..nc {
                    for (i, &s) in row(4 + c).iter().enumerate() {
                        if s > best[i] {
                            best[i] = s;
                            best_c[i] = c as u16;
                        }
                    }
                }
                let (cx, cy, w, h) = (row(0), row(1), row(2), row(3));
                let angle = oriented.then(|| row(4 + nc));
                for i in 0..n {
                    if best[i] > conf {
                        let c = usize::from(best_c[i]);
                        out.push(match angle {
                            Some(a) => Detection::oriented(
                                c as u32,
                                name(c),
                                best[i],
                                OrientedBox::new(cx[i], cy[i], w[i], h[i], a[i]),
                            ),
                            None => Detection::new(
                                c as u32,
                                name(c),
                                best[i],
                                BBox::from_cxcywh(cx[i], cy[i], w[i], h[i]),
                            ),
                        });
                    }
                }
            }
            Self::Yolov5 { nc } => {
                if d2 != 5 + nc {
                    return Err(format!("output rows have {d2} values, expected {}", 5 + nc));
                }
                for r in data.chunks_exact(d2) {
                    if r[4] <= conf {
                        continue;
                    }
                    let (c, s) = r[5..]
                        .iter()
                        .enumerate()
                        .fold(
                            (0, f32::MIN),
                            |acc, (c, &s)| if s > acc.1 { (c, s) } else { acc },
                        );
                    let score = s * r[4];
                    if score > conf {
                        out.push(Detection::new(
                            c as u32,
                            name(c),
                            score,
                            BBox::from_cxcywh(r[0], r[1], r[2], r[3]),
                        ));
                    }
                }
            }
            Self::EndToEndDetect | Self::EndToEndObb => {
                let oriented = matches!(self, Self::EndToEndObb);
                if d2 != if oriented { 7 } else { 6 } {
                    return Err(format!(
                        "output rows have {d2} values, expected {}",
                        if oriented { 7 } else { 6 }
                    ));
                }
                for r in data.chunks_exact(d2) {
                    if out.len() >= max_det {
                        break;
                    }
                    if r[4].is_nan() || r[4] <= conf || !r[5].is_finite() || r[5] < 0.0 {
                        continue;
                    }
                    let c = r[5] as usize;
                    out.push(if oriented {
                        Detection::oriented(
                            c as u32,
                            name(c),
                            r[4],
                            OrientedBox::new(r[0], r[1], r[2], r[3], r[6]),
                        )
                    } else {
                        Detection::new(c as u32, name(c), r[4], BBox::new(r[0], r[1], r[2], r[3]))
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_layout() {
        assert_eq!(
            Layout::recognise(&[1, 20, 21504], Some(15), true, Some(false)),
            Ok(Layout::Obb { nc: 15 })
        );
        assert_eq!(
            Layout::recognise(&[-1, 20, -1], Some(15), true, None),
            Ok(Layout::Obb { nc: 15 })
        );
        assert_eq!(
            Layout::recognise(&[1, 15, 21504], Some(11), false, None),
            Ok(Layout::Detect { nc: 11 })
        );
        assert_eq!(
            Layout::recognise(&[1, 300, 7], Some(15), true, Some(true)),
            Ok(Layout::EndToEndObb)
        );
        assert_eq!(
            Layout::recognise(&[1, 300, 6], Some(80), false, None),
            Ok(Layout::EndToEndDetect)
        );
        assert_eq!(
            Layout::recognise(&[1, 25200, 85], Some(80), false, None),
            Ok(Layout::Yolov5 { nc: 80 })
        );
        assert_eq!(
            Layout::recognise(&[1, 84, 8400], None, false, None),
            Ok(Layout::Detect { nc: 80 })
        );
        assert_eq!(
            Layout::recognise(&[1, 25200, 85], None, false, None),
            Ok(Layout::Yolov5 { nc: 80 })
        );
        let e = Layout::recognise(&[1, 30, 21504], Some(15), true, None).unwrap_err();
        assert!(
            e.contains("[1, 30, 21504]") && e.contains("15 classes"),
            "{e}"
        );
        assert!(
            Layout::recognise(&[1, 1000], Some(15), false, None)
                .unwrap_err()
                .contains("expected 3 axes")
        );
    }

    #[test]
    fn decodes_detect_and_obb_rows() {
        // Two anchors, two classes: anchor 0 best class 1 (0.9), anchor 1 below the threshold.
        let data = [
            10.0, 50.0, 20.0, 60.0, 4.0, 6.0, 2.0, 8.0, 0.1, 0.1, 0.9, 0.2,
        ];
        let d = Layout::Detect { nc: 2 }
            .decode(&data, [6, 2], 0.25, &ClassNames::new(["a", "b"]), 300)
            .unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].class_id, d[0].class_name.as_str(), d[0].score),
            (1, "b", 0.9)
        );
        assert_eq!(d[0].bbox, BBox::new(8.0, 19.0, 12.0, 21.0));
        let mut obb = data.to_vec();
        obb.extend([0.5, 0.0]);
        let d = Layout::Obb { nc: 2 }
            .decode(&obb, [7, 2], 0.25, &ClassNames::default(), 300)
            .unwrap();
        assert_eq!(d[0].obb, Some(OrientedBox::new(10.0, 20.0, 4.0, 2.0, 0.5)));
        assert_eq!(d[0].class_name, "1");
    }

    #[test]
    fn decodes_end_to_end_and_yolov5_rows() {
        let rows = [
            1.0, 2.0, 3.0, 4.0, 0.8, 2.0, 0.3, 5.0, 5.0, 1.0, 1.0, 0.1, 0.0, 0.0,
        ];
        let d = Layout::EndToEndObb
            .decode(&rows, [2, 7], 0.25, &ClassNames::default(), 300)
            .unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].class_id, d[0].obb),
            (2, Some(OrientedBox::new(1.0, 2.0, 3.0, 4.0, 0.3)))
        );
        let v5 = [10.0, 10.0, 4.0, 4.0, 0.5, 0.2, 0.9];
        let d = Layout::Yolov5 { nc: 2 }
            .decode(&v5, [1, 7], 0.25, &ClassNames::default(), 300)
            .unwrap();
        assert_eq!((d[0].class_id, d[0].score), (1, 0.45));
        assert!(
            Layout::EndToEndDetect
                .decode(&rows, [2, 7], 0.25, &ClassNames::default(), 300)
                .is_err()
        );
        assert!(
            Layout::Detect { nc: 2 }
                .decode(&rows, [6, 3], 0.25, &ClassNames::default(), 300)
                .unwrap_err()
                .contains("14 values")
        );
    }
}
