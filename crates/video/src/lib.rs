//! Video input for `nsod track`: the frames of a video file or a network stream, decoded by FFmpeg's libraries
//! (`ffmpeg-next` against the system's FFmpeg; Debian 12 has 5.1), each with its presentation timestamp as an
//! integer in the stream's time base, converted by swscale to RGB24 at the frame's native size (the letterbox stays
//! nsod's own).
//!
//! Untrusted input: the protocols a [`Reader`] may open are limited to the input's own (`file` for a path; for a URL
//! its scheme and what that scheme runs on, e.g. `https` → `https,tls,tcp`), and the demuxers to the container
//! formats of [`FORMATS`], so neither a playlist nor a `concat:` list reaches other files or hosts. Network reads
//! time out ([`Options::timeout`]).
//!
//! Timestamps: the best-effort timestamp of each frame (its PTS, or FFmpeg's estimate when the container has none),
//! unwrapped where the stream's timestamps wrap (MPEG-TS: 33 bits), never going backwards (a frame whose timestamp
//! repeats or goes back is given the previous one plus one tick). Times are seconds from the first frame's
//! timestamp. Variable frame rates are kept as the container has them.

use image::RgbImage;
use std::path::Path;
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;

/// The container formats (demuxers) a [`Reader`] opens.
pub const FORMATS: &str =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,flv,rtsp,h264,hevc,mjpeg";

/// File name extensions read as video by `nsod track`.
pub const EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "m2ts", "mts", "mpg", "mpeg", "flv", "h264",
    "264", "hevc", "265",
];

/// Network schemes and the protocols each needs beneath it.
const SCHEMES: &[(&str, &str)] = &[
    ("http", "http,tcp"),
    ("https", "https,tls,tcp"),
    ("rtsp", "rtsp,rtp,udp,tcp"),
    ("rtsps", "rtsps,rtp,udp,tcp,tls"),
    ("rtmp", "rtmp,tcp"),
    ("rtmps", "rtmps,tls,tcp"),
    ("srt", "srt,udp"),
    ("udp", "udp"),
    ("tcp", "tcp"),
];

/// Why a video cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("{input}: cannot open: {source}")]
    Open {
        input: String,
        #[source]
        source: ffmpeg::Error,
    },
    #[error("{input}: no video stream")]
    NoVideo { input: String },
    #[error("{input}: unsupported video codec: {codec}")]
    Unsupported { input: String, codec: String },
    #[error(
        "{input}: URL scheme {scheme}:// is not supported (http, https, rtsp, rtsps, rtmp, rtmps, srt, udp, tcp)"
    )]
    Scheme { input: String, scheme: String },
    #[error("{input}: cannot read frame {frame}: {source}")]
    Read {
        input: String,
        frame: u64,
        #[source]
        source: ffmpeg::Error,
    },
    #[error(
        "{input}: damaged: {packets} packet(s) could not be decoded, the frames around them skipped"
    )]
    Damaged {
        input: String,
        packets: u64,
        #[source]
        source: ffmpeg::Error,
    },
    #[error("{input}: FFmpeg: {source}")]
    Ffmpeg {
        input: String,
        #[source]
        source: ffmpeg::Error,
    },
}

/// How a [`Reader`] reads.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep every `every`-th decoded frame (1: all).
    pub every: u32,
    /// Keep at most this many frames per second of the stream's time (the first frame at or after each 1/fps).
    pub fps: Option<f64>,
    /// A network read that waits longer than this fails (files are not limited).
    pub timeout: Duration,
    /// When set, every blocking read gives up at once (FFmpeg's interrupt callback): a signal ends a live stream
    /// without waiting for its next packet.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            every: 1,
            fps: None,
            timeout: Duration::from_secs(10),
            stop: None,
        }
    }
}

/// What the container says about the video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// The demuxer's name (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, ...).
    pub format: String,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// The stream's time base: a timestamp `pts` is `pts · num / den` seconds.
    pub time_base: (i32, i32),
    /// The average frame rate, when the container knows it.
    pub frame_rate: Option<f64>,
    /// The number of frames, when the container knows it.
    pub frames: Option<u64>,
    /// True for a network stream.
    pub network: bool,
}

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame's position among the decoded frames (0-based, before subsampling).
    pub decoded: u64,
    /// The presentation timestamp in the stream's time base (unwrapped, never going backwards).
    pub pts: i64,
    /// Seconds since the first frame.
    pub time: f64,
    pub image: RgbImage,
    /// Seconds spent reading and decoding it (with the frames skipped before it).
    pub decode_seconds: f64,
}

/// True when `s` is a URL (`scheme://...`).
pub fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
    })
}

/// True when the path's extension is one of [`EXTENSIONS`].
pub fn is_video_path(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// FFmpeg's libraries, as linked: `libavformat 59.27.100, libavcodec 59.37.100, ...`.
pub fn versions() -> String {
    fn v(n: u32) -> String {
        format!("{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff)
    }
    format!(
        "libavformat {}, libavcodec {}, libavutil {}, libswscale {}",
        v(ffmpeg::format::version()),
        v(ffmpeg::codec::version()),
        v(ffmpeg::util::version()),
        v(ffmpeg::software::scaling::version()),
    )
}

/// The video decoders this FFmpeg has among the codecs aerial video comes in.
pub fn decoders() -> Vec<&'static str> {
    init();
    use ffmpeg::codec::Id;
    [
        (Id::H264, "h264"),
        (Id::HEVC, "hevc"),
        (Id::AV1, "av1"),
        (Id::VP9, "vp9"),
        (Id::VP8, "vp8"),
        (Id::MPEG4, "mpeg4"),
        (Id::MPEG2VIDEO, "mpeg2video"),
        (Id::MJPEG, "mjpeg"),
        (Id::FFV1, "ffv1"),
        (Id::PRORES, "prores"),
    ]
    .into_iter()
    .filter(|(id, _)| ffmpeg::decoder::find(*id).is_some())
    .map(|(_, n)| n)
    .collect()
}

/// One line for `nsod doctor`: the libraries, the decoders, and the URL schemes a stream may use.
pub fn describe() -> String {
    format!(
        "{}; decoders: {}; --save-video encoder: {}; URL schemes allowed: {}",
        versions(),
        decoders().join(", "),
        output_encoder().unwrap_or("none"),
        SCHEMES
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ffmpeg::init();
        // nsod reports errors itself, one line each, naming the input.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
    });
}

/// The protocols `input` may use.
fn protocols(input: &str) -> Result<&'static str, VideoError> {
    if !is_url(input) {
        return Ok("file");
    }
    let scheme = input.split_once("://").map_or("", |(s, _)| s);
    SCHEMES
        .iter()
        .find(|(s, _)| s.eq_ignore_ascii_case(scheme))
        .map(|(_, p)| *p)
        .ok_or_else(|| VideoError::Scheme {
            input: input.to_owned(),
            scheme: scheme.to_owned(),
        })
}

/// A swscale context kept while the frames' format and size stay the same (they may change mid-stream).
#[derive(Default)]
struct Scaler(
    Option<(
        ffmpeg::software::scaling::Context,
        ffmpeg::format::Pixel,
        u32,
        u32,
    )>,
);

impl Scaler {
    /// The context from `fmt` `w × h` to `to` at `size`, made anew when the source changed.
    fn get(
        &mut self,
        (fmt, w, h): (ffmpeg::format::Pixel, u32, u32),
        to: ffmpeg::format::Pixel,
        size: (u32, u32),
        flags: ffmpeg::software::scaling::Flags,
    ) -> Result<&mut ffmpeg::software::scaling::Context, ffmpeg::Error> {
        let fresh = match self.0.take() {
            Some(kept) if kept.1 == fmt && kept.2 == w && kept.3 == h => kept,
            _ => (
                ffmpeg::software::scaling::Context::get(fmt, w, h, to, size.0, size.1, flags)?,
                fmt,
                w,
                h,
            ),
        };
        Ok(&mut self.0.insert(fresh).0)
    }
}

/// Reads the frames of one video, in order.
pub struct Reader {
    input: String,
    ictx: ffmpeg::format::context::Input,
    stream: usize,
    decoder: ffmpeg::decoder::Video,
    scaler: Scaler,
    info: VideoInfo,
    opts: Options,
    wrap_bits: u32,
    /// Unwrapping: the offset added to the raw timestamps, and the last raw one.
    wrap_offset: i64,
    last_raw: Option<i64>,
    first_pts: Option<i64>,
    last_pts: Option<i64>,
    decoded: u64,
    next_due: f64,
    eof_sent: bool,
    done: bool,
    /// Packets the demuxer marked corrupt or the decoder refused, and the first error.
    damaged: (u64, Option<ffmpeg::Error>),
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("input", &self.input)
            .field("info", &self.info)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// Opens a video file or URL.
    pub fn open(input: &str, opts: Options) -> Result<Self, VideoError> {
        init();
        let network = is_url(input);
        let mut dict = ffmpeg::Dictionary::new();
        dict.set("protocol_whitelist", protocols(input)?);
        dict.set("format_whitelist", FORMATS);
        if network {
            let us = opts.timeout.as_micros().to_string();
            // rw_timeout: every protocol's reads; timeout: the listen/connect of tcp, rtsp's socket.
            dict.set("rw_timeout", &us);
            dict.set("timeout", &us);
        }
        let err = |source| VideoError::Open {
            input: input.to_owned(),
            source,
        };
        let stop = opts.stop.clone();
        let ictx = ffmpeg::format::input_with_interrupt_and_dictionary(
            &input,
            move || {
                stop.as_ref()
                    .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
            },
            dict,
        )
        .map_err(err)?;
        let stream = ictx
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| VideoError::NoVideo {
                input: input.to_owned(),
            })?;
        let index = stream.index();
        let tb = stream.time_base();
        let rate = stream.avg_frame_rate();
        let frame_rate = (rate.numerator() > 0 && rate.denominator() > 0)
            .then(|| f64::from(rate.numerator()) / f64::from(rate.denominator()));
        let frames = u64::try_from(stream.frames()).ok().filter(|&n| n > 0);
        // The width of the container's timestamps (FFmpeg's pts_wrap_bits for these demuxers): MPEG's 33 bits,
        // RTP's 32; the others do not wrap.
        let format_name = ictx.format().name().to_owned();
        let wrap_bits = match format_name.as_str() {
            "mpegts" | "mpeg" => 33,
            "rtsp" => 32,
            _ => 64,
        };
        let params = stream.parameters();
        let codec_id = params.id();
        // A codec FFmpeg does not know at all has the id `none`: say so rather than name it `none`.
        let codec_name = match codec_id {
            ffmpeg::codec::Id::None => {
                "the container's codec tag is not one FFmpeg knows".to_owned()
            }
            id => format!(
                "{} has no decoder in this FFmpeg",
                format!("{id:?}").to_lowercase()
            ),
        };
        let ctx = ffmpeg::codec::context::Context::from_parameters(params).map_err(|source| {
            VideoError::Ffmpeg {
                input: input.to_owned(),
                source,
            }
        })?;
        let decoder = ctx.decoder().video().map_err(|_| VideoError::Unsupported {
            input: input.to_owned(),
            codec: codec_name,
        })?;
        let info = VideoInfo {
            format: format_name,
            codec: decoder.codec().map_or_else(
                || format!("{codec_id:?}").to_lowercase(),
                |c| c.name().to_owned(),
            ),
            width: decoder.width(),
            height: decoder.height(),
            time_base: (tb.numerator(), tb.denominator()),
            frame_rate,
            frames,
            network,
        };
        Ok(Self {
            input: input.to_owned(),
            ictx,
            stream: index,
            decoder,
            scaler: Scaler::default(),
            info,
            opts,
            wrap_bits,
            wrap_offset: 0,
            last_raw: None,
            first_pts: None,
            last_pts: None,
            decoded: 0,
            next_due: 0.0,
            eof_sent: false,
            done: false,
            damaged: (0, None),
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Seconds of `pts` ticks.
    pub fn seconds(&self, ticks: i64) -> f64 {
        let (num, den) = self.info.time_base;
        ticks as f64 * f64::from(num) / f64::from(den.max(1))
    }

    /// The next frame kept by the subsampling, or `None` at the end of the stream. A stream with damaged packets
    /// (a truncated file, a corrupt frame) gives every frame that could be decoded, then
    /// [`VideoError::Damaged`] once, at its end.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, VideoError> {
        let start = Instant::now();
        loop {
            let Some(raw) = self.next_decoded()? else {
                if let (n, Some(source)) = (self.damaged.0, self.damaged.1.take()) {
                    return Err(VideoError::Damaged {
                        input: self.input.clone(),
                        packets: n,
                        source,
                    });
                }
                return Ok(None);
            };
            let decoded = self.decoded;
            self.decoded += 1;
            let pts = self.timestamp(&raw);
            let first = *self.first_pts.get_or_insert(pts);
            let time = self.seconds(pts - first);
            let every = u64::from(self.opts.every.max(1));
            if !decoded.is_multiple_of(every) {
                continue;
            }
            if let Some(fps) = self.opts.fps.filter(|f| *f > 0.0) {
                // A small tolerance so that 30 fps sampled at 15 keeps every second frame despite rounding.
                if time + 1e-6 < self.next_due {
                    continue;
                }
                self.next_due = (time * fps + 1.0).floor() / fps;
            }
            let image = self.convert(&raw)?;
            return Ok(Some(Frame {
                decoded,
                pts,
                time,
                image,
                decode_seconds: start.elapsed().as_secs_f64(),
            }));
        }
    }

    /// The frame's timestamp, unwrapped and never going backwards.
    fn timestamp(&mut self, frame: &ffmpeg::frame::Video) -> i64 {
        let raw = frame.timestamp().or(frame.pts());
        let Some(raw) = raw else {
            // No timestamp at all: one tick of the average frame rate after the previous one.
            let step = self.ticks_per_frame();
            let pts = self.last_pts.map_or(0, |p| p + step);
            self.last_pts = Some(pts);
            return pts;
        };
        if (1..64).contains(&self.wrap_bits)
            && let Some(last) = self.last_raw
        {
            let period = 1i64 << self.wrap_bits;
            if raw < last - period / 2 {
                self.wrap_offset += period;
            } else if raw > last + period / 2 && self.wrap_offset >= period {
                // A frame from before the wrap, reordered after it.
                self.wrap_offset -= period;
            }
        }
        self.last_raw = Some(raw);
        let mut pts = raw + self.wrap_offset;
        if let Some(last) = self.last_pts
            && pts <= last
        {
            pts = last + 1;
        }
        self.last_pts = Some(pts);
        pts
    }

    fn ticks_per_frame(&self) -> i64 {
        let (num, den) = self.info.time_base;
        match self.info.frame_rate {
            Some(r) if num > 0 && r > 0.0 => {
                ((f64::from(den) / f64::from(num)) / r).round().max(1.0) as i64
            }
            _ => 1,
        }
    }

    /// The next frame out of the decoder, reading packets as needed.
    fn next_decoded(&mut self) -> Result<Option<ffmpeg::frame::Video>, VideoError> {
        let mut frame = ffmpeg::frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => return Ok(Some(frame)),
                Err(ffmpeg::Error::Eof) => {
                    self.done = true;
                    return Ok(None);
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(source) => {
                    return Err(VideoError::Read {
                        input: self.input.clone(),
                        frame: self.decoded,
                        source,
                    });
                }
            }
            if self.done {
                return Ok(None);
            }
            if self.eof_sent {
                // Drained: receive_frame gives Eof next.
                continue;
            }
            let mut packet = ffmpeg::Packet::empty();
            match packet.read(&mut self.ictx) {
                Ok(()) => {
                    if packet.stream() != self.stream {
                        continue;
                    }
                    if packet.is_corrupt() {
                        self.damage(ffmpeg::Error::InvalidData);
                    }
                    if let Err(source) = self.decoder.send_packet(&packet) {
                        // A damaged packet: the decoder skips it (as FFmpeg's own tools do), and it is reported
                        // at the end of the stream.
                        if matches!(source, ffmpeg::Error::Other { errno } if errno == ffmpeg::util::error::EAGAIN)
                        {
                            continue;
                        }
                        if matches!(source, ffmpeg::Error::InvalidData) {
                            self.damage(source);
                            continue;
                        }
                        return Err(VideoError::Read {
                            input: self.input.clone(),
                            frame: self.decoded,
                            source,
                        });
                    }
                }
                Err(ffmpeg::Error::Eof) => {
                    let _ = self.decoder.send_eof();
                    self.eof_sent = true;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(source) => {
                    return Err(VideoError::Read {
                        input: self.input.clone(),
                        frame: self.decoded,
                        source,
                    });
                }
            }
        }
    }

    fn damage(&mut self, e: ffmpeg::Error) {
        self.damaged.0 += 1;
        self.damaged.1.get_or_insert(e);
    }

    /// The frame as RGB24 at its own size.
    fn convert(&mut self, frame: &ffmpeg::frame::Video) -> Result<RgbImage, VideoError> {
        let (w, h, fmt) = (frame.width(), frame.height(), frame.format());
        let ffmpeg_err = |source| VideoError::Ffmpeg {
            input: self.input.clone(),
            source,
        };
        use ffmpeg::software::scaling::Flags;
        let scaler = self
            .scaler
            .get(
                (fmt, w, h),
                ffmpeg::format::Pixel::RGB24,
                (w, h),
                Flags::POINT | Flags::ACCURATE_RND | Flags::FULL_CHR_H_INT | Flags::FULL_CHR_H_INP,
            )
            .map_err(ffmpeg_err)?;
        let mut rgb = ffmpeg::frame::Video::empty();
        scaler
            .run(frame, &mut rgb)
            .map_err(|source| VideoError::Ffmpeg {
                input: self.input.clone(),
                source,
            })?;
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        let row = 3 * w as usize;
        let mut out = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            out.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        RgbImage::from_raw(w, h, out).ok_or_else(|| VideoError::Ffmpeg {
            input: self.input.clone(),
            source: ffmpeg::Error::InvalidData,
        })
    }
}

/// Writes annotated frames as a video (`nsod track --save-video`): H.264 through libavcodec's libx264 where this
/// FFmpeg has it, else MPEG-4 Part 2; each frame at the timestamp it is given, in the time base given (the input
/// video's, so the output plays at the input's times, variable frame rate included). The container follows the
/// name the caller gives [`Writer::create`] (`mp4`, `mkv`, ...), whatever the file's own name (a temporary one).
pub struct Writer {
    path: String,
    octx: ffmpeg::format::context::Output,
    encoder: ffmpeg::encoder::Video,
    scaler: Scaler,
    time_base: ffmpeg::Rational,
    stream_time_base: ffmpeg::Rational,
    size: (u32, u32),
    last_pts: Option<i64>,
    /// The encoder's name (`libx264`, `mpeg4`).
    pub codec: &'static str,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

/// The encoder `--save-video` uses in this FFmpeg: `libx264` (H.264) when available, else `mpeg4`.
pub fn output_encoder() -> Option<&'static str> {
    init();
    if ffmpeg::encoder::find_by_name("libx264").is_some() {
        Some("libx264")
    } else if ffmpeg::encoder::find(ffmpeg::codec::Id::MPEG4).is_some() {
        Some("mpeg4")
    } else {
        None
    }
}

impl Writer {
    /// Creates `path` as a `format` container (`mp4`, `matroska`, ...) for `width × height` frames whose timestamps
    /// are in `time_base` (`(num, den)`); odd sizes are scaled to the even size the encoders need.
    pub fn create(
        path: &Path,
        format: &str,
        (width, height): (u32, u32),
        time_base: (i32, i32),
    ) -> Result<Self, VideoError> {
        init();
        let shown = path.display().to_string();
        let err = |source| VideoError::Ffmpeg {
            input: shown.clone(),
            source,
        };
        let codec_name = output_encoder().ok_or_else(|| VideoError::Unsupported {
            input: shown.clone(),
            codec: "this FFmpeg has neither an H.264 (libx264) nor an MPEG-4 encoder".into(),
        })?;
        let codec = if codec_name == "libx264" {
            ffmpeg::encoder::find_by_name("libx264")
        } else {
            ffmpeg::encoder::find(ffmpeg::codec::Id::MPEG4)
        }
        .ok_or(ffmpeg::Error::EncoderNotFound)
        .map_err(err)?;
        let mut octx =
            ffmpeg::format::output_as(path, format).map_err(|source| VideoError::Open {
                input: shown.clone(),
                source,
            })?;
        let global_header = octx
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
        let size = ((width & !1).max(2), (height & !1).max(2));
        let tb = ffmpeg::Rational::new(time_base.0.max(1), time_base.1.max(1));
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(err)?;
        enc.set_width(size.0);
        enc.set_height(size.1);
        enc.set_format(ffmpeg::format::Pixel::YUV420P);
        enc.set_time_base(tb);
        if global_header {
            enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
        }
        let mut opts = ffmpeg::Dictionary::new();
        if codec_name == "libx264" {
            opts.set("preset", "veryfast");
            opts.set("crf", "20");
        } else {
            opts.set("qscale", "3");
        }
        let encoder = enc.open_with(opts).map_err(err)?;
        {
            let mut ost = octx.add_stream(codec).map_err(err)?;
            ost.set_parameters(&encoder);
            ost.set_time_base(tb);
        }
        octx.write_header().map_err(err)?;
        let stream_time_base = octx.stream(0).map_or(tb, |s| s.time_base());
        Ok(Self {
            path: shown,
            octx,
            encoder,
            scaler: Scaler::default(),
            time_base: tb,
            stream_time_base,
            size,
            last_pts: None,
            codec: codec_name,
        })
    }

    /// Encodes one RGB frame at `pts` (in the time base given to [`Writer::create`]; kept increasing).
    pub fn write(&mut self, image: &RgbImage, pts: i64) -> Result<(), VideoError> {
        let shown = self.path.clone();
        let err = |source| VideoError::Ffmpeg {
            input: shown.clone(),
            source,
        };
        let (w, h) = image.dimensions();
        let mut rgb = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::RGB24, w, h);
        let stride = rgb.stride(0);
        let row = 3 * w as usize;
        let src = image.as_raw();
        let data = rgb.data_mut(0);
        for y in 0..h as usize {
            data[y * stride..y * stride + row].copy_from_slice(&src[y * row..(y + 1) * row]);
        }
        let mut yuv = ffmpeg::frame::Video::empty();
        self.scaler
            .get(
                (ffmpeg::format::Pixel::RGB24, w, h),
                ffmpeg::format::Pixel::YUV420P,
                self.size,
                ffmpeg::software::scaling::Flags::BILINEAR,
            )
            .and_then(|s| s.run(&rgb, &mut yuv))
            .map_err(err)?;
        let pts = match self.last_pts {
            Some(last) if pts <= last => last + 1,
            _ => pts,
        };
        self.last_pts = Some(pts);
        yuv.set_pts(Some(pts));
        self.encoder.send_frame(&yuv).map_err(err)?;
        self.drain()
    }

    fn drain(&mut self) -> Result<(), VideoError> {
        let mut packet = ffmpeg::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(self.time_base, self.stream_time_base);
            packet
                .write_interleaved(&mut self.octx)
                .map_err(|source| VideoError::Ffmpeg {
                    input: self.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Flushes the encoder and writes the container's trailer.
    pub fn finish(mut self) -> Result<(), VideoError> {
        let err = |source| VideoError::Ffmpeg {
            input: self.path.clone(),
            source,
        };
        self.encoder.send_eof().map_err(err)?;
        self.drain()?;
        let path = self.path.clone();
        self.octx
            .write_trailer()
            .map_err(|source| VideoError::Ffmpeg {
                input: path,
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_video_paths_are_recognised() {
        assert!(is_url("rtsp://127.0.0.1:8554/cam"));
        assert!(is_url("https://example.org/a.mp4"));
        assert!(!is_url("/data/flight.mp4"));
        assert!(!is_url("C:/x.mp4"));
        assert!(is_video_path(Path::new("a/B.MP4")));
        assert!(is_video_path(Path::new("x.mkv")));
        assert!(!is_video_path(Path::new("x.png")));
        assert_eq!(protocols("/a.mp4").unwrap(), "file");
        assert_eq!(protocols("https://h/a.mp4").unwrap(), "https,tls,tcp");
        let e = protocols("concat:/a.mp4|/b.mp4").map(|_| ());
        assert!(
            e.is_ok(),
            "a path-like string is a file path (and only file: is allowed)"
        );
        let e = protocols("gopher://h/x").unwrap_err();
        assert!(e.to_string().contains("gopher:// is not supported"), "{e}");
    }
}
