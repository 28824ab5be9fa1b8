using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace VideoMatch.Engine.Frames;

/// <summary>
/// Decodes JPEG frames with libjpeg-turbo (<see cref="TurboJpeg"/>: a warning about damaged or missing data refuses
/// the frame) and PNG frames with SkiaSharp. Everything the header and the byte count can tell is checked before a
/// pixel buffer exists: size limits, and a header that declares more pixels than the bytes present could hold (a
/// decompression bomb, or a truncated file).
/// </summary>
internal static class ImageDecoder
{
    /// <summary>
    /// Decoded buffers up to this size come from the shared pool and go back to it; larger ones (above a 1080p RGBA
    /// frame) are native memory freed as soon as the frame is prepared, so a burst of large images is neither kept by
    /// the pool nor left for a distant garbage collection.
    /// </summary>
    internal const int PooledBytes = 1920 * 1088 * 4;

    /// <summary>Deflate's largest ratio (RFC 1951: 258 bytes per 2-bit code, with block overheads): a PNG's pixel rows can be at most this many times its bytes.</summary>
    private const long DeflateMaxRatio = 1032;

    /// <summary>A decoded image whose pixels live in a buffer (pooled when small, native when large) until disposed.</summary>
    public sealed class Decoded(PixelBuffer buffer, FrameInput frame) : IDisposable
    {
        private PixelBuffer? _buffer = buffer;

        public FrameInput Frame { get; } = frame;

        public void Dispose() => ((IDisposable?)Interlocked.Exchange(ref _buffer, null))?.Dispose();
    }

    /// <summary>Where decoded pixels go: a pooled array, or native memory for large images.</summary>
    public sealed unsafe class PixelBuffer : MemoryManager<byte>
    {
        private readonly int _length;
        private byte[]? _pooled;
        private byte* _native;

        public PixelBuffer(int length)
        {
            _length = length;
            if (length <= PooledBytes)
            {
                _pooled = ArrayPool<byte>.Shared.Rent(length);
            }
            else
            {
                _native = (byte*)NativeMemory.Alloc((nuint)length);
            }
        }

        public override Span<byte> GetSpan() => _pooled is { } array ? array.AsSpan(0, _length) : new Span<byte>(_native, _length);

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            if (_pooled is not { } array)
            {
                return new MemoryHandle(_native + elementIndex);
            }

            var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
            return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle);
        }

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
            if (Interlocked.Exchange(ref _pooled, null) is { } array)
            {
                ArrayPool<byte>.Shared.Return(array);
            }

            if (_native is not null)
            {
                NativeMemory.Free(_native);
                _native = null;
            }
        }
    }

    /// <summary>The bytes a decode of this image will take, from its header alone (0 when the header cannot be read).</summary>
    public static unsafe long DecodedBytes(ReadOnlyMemory<byte> data)
    {
        if (data.IsEmpty)
        {
            return 0;
        }

        if (IsJpeg(data.Span))
        {
            return TurboJpeg.Unavailable is not null ? 0 : TurboJpeg.ReadHeader(data.Span).Header is { } header ? header.DecodeBytes : 0;
        }

        using var pin = data.Pin();
        using var skData = SKData.Create((IntPtr)pin.Pointer, data.Length);
        using var codec = SKCodec.Create(skData);
        return codec is null ? 0 : (long)codec.Info.Width * codec.Info.Height * (codec.Info.ColorType == SKColorType.Gray8 ? 1 : 4);
    }

    /// <summary>
    /// Decodes a JPEG (libjpeg-turbo, every warning refused) or a PNG (SkiaSharp) after the checks its header allows.
    /// </summary>
    /// <exception cref="FrameRejectedException">The image is refused; the message says why.</exception>
    public static Decoded Decode(FrameEncoding encoding, ReadOnlyMemory<byte> data, int maxDimension, long maxPixels = long.MaxValue)
    {
        var name = encoding == FrameEncoding.Jpeg ? "JPEG" : "PNG";
        if (data.IsEmpty)
        {
            throw new FrameRejectedException($"The {name} image is empty (0 bytes).");
        }

        return encoding == FrameEncoding.Jpeg && IsJpeg(data.Span)
            ? DecodeJpeg(data.Span, maxDimension, maxPixels)
            : DecodeWithSkia(encoding, name, data, maxDimension, maxPixels);
    }

    /// <summary>A JPEG's start-of-image marker followed by the first marker's lead byte.</summary>
    private static bool IsJpeg(ReadOnlySpan<byte> data) => data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;

    private static Decoded DecodeJpeg(ReadOnlySpan<byte> data, int maxDimension, long maxPixels)
    {
        if (TurboJpeg.Unavailable is { } missing)
        {
            throw new FrameRejectedException($"The JPEG image was not decoded: {missing}.");
        }

        var (header, problem) = TurboJpeg.ReadHeader(data);
        if (header is not { } jpeg)
        {
            throw new FrameRejectedException($"The JPEG image could not be read ({problem}); the data is corrupt or not an image.");
        }

        CheckSize("JPEG", jpeg.Width, jpeg.Height, maxDimension, maxPixels, data);
        var buffer = new PixelBuffer(checked((int)jpeg.DecodeBytes));
        try
        {
            if (TurboJpeg.Decode(data, jpeg, buffer.GetSpan()) is { } damage)
            {
                throw new FrameRejectedException($"The JPEG image is incomplete or damaged ({damage}); it is truncated or corrupt, so send the whole, undamaged file.");
            }

            var rowBytes = jpeg.Width * PixelFormats.BytesPerPixel(jpeg.Format);
            return new Decoded(buffer, FrameInput.Raw(jpeg.Format, jpeg.Width, jpeg.Height, rowBytes, buffer.Memory[..(rowBytes * jpeg.Height)]));
        }
        catch
        {
            ((IDisposable)buffer).Dispose();
            throw;
        }
    }

    private static unsafe Decoded DecodeWithSkia(FrameEncoding encoding, string name, ReadOnlyMemory<byte> data, int maxDimension, long maxPixels)
    {
        using var pin = data.Pin();
        using var skData = SKData.Create((IntPtr)pin.Pointer, data.Length);
        using var stream = new SKMemoryStream(skData);
        using var codec = SKCodec.Create(stream, out var result);
        if (codec is null)
        {
            throw new FrameRejectedException($"The {name} image could not be read ({Describe(result)}); the data is corrupt or not an image.");
        }

        var actual = codec.EncodedFormat;
        var expected = encoding == FrameEncoding.Jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png;
        if (actual != expected)
        {
            throw new FrameRejectedException($"The image was declared {name} but its data is {actual}; set the encoding to match the data.");
        }

        var width = codec.Info.Width;
        var height = codec.Info.Height;
        CheckSize(name, width, height, maxDimension, maxPixels, data.Span, encoding);
        var gray = codec.Info.ColorType == SKColorType.Gray8;
        var format = gray ? FramePixelFormat.Gray8 : FramePixelFormat.Rgba32;
        var info = new SKImageInfo(width, height, gray ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var bytes = info.BytesSize;
        var buffer = new PixelBuffer(bytes);
        try
        {
            SKCodecResult decodeResult;
            using (var target = buffer.Pin())
            {
                decodeResult = codec.GetPixels(info, (IntPtr)target.Pointer);
            }

            if (decodeResult != SKCodecResult.Success)
            {
                throw new FrameRejectedException($"The {name} image could not be decoded ({Describe(decodeResult)}).");
            }

            return new Decoded(buffer, FrameInput.Raw(format, width, height, info.RowBytes, buffer.Memory));
        }
        catch
        {
            ((IDisposable)buffer).Dispose();
            throw;
        }
    }

    /// <summary>What the header alone can refuse: an empty size, the per-side and per-image limits, too few bytes for the size.</summary>
    private static void CheckSize(string name, int width, int height, int maxDimension, long maxPixels, ReadOnlySpan<byte> data, FrameEncoding encoding = FrameEncoding.Jpeg)
    {
        if (width <= 0 || height <= 0)
        {
            throw new FrameRejectedException($"The {name} header declares an empty image ({width}×{height}).");
        }

        if (width > maxDimension || height > maxDimension)
        {
            throw new FrameRejectedException($"The {name} image is {width}×{height}, over the server's limit of {maxDimension} pixels per side; downscale it first.");
        }

        if ((long)width * height > maxPixels)
        {
            throw new FrameRejectedException(string.Create(CultureInfo.InvariantCulture,
                $"The {name} image is {width}×{height} ({(long)width * height} pixels), over the server's limit of {maxPixels} pixels per image (Limits:MaxImagePixels); downscale it first (the videomatch CLI and the Python and Node clients do that for you)."));
        }

        var least = LeastEncodedBytes(encoding, width, height, data);
        if (data.Length < least)
        {
            throw new FrameRejectedException(string.Create(CultureInfo.InvariantCulture,
                $"The {name} header declares {width}×{height} pixels but the image holds only {data.Length} bytes, fewer than any complete {name} of that size ({least}); it is truncated or its header is wrong."));
        }
    }

    /// <summary>
    /// The fewest bytes a complete image of that size can take. PNG: its filtered rows (one filter byte each, at the
    /// bits per pixel its IHDR chunk declares) compressed at deflate's best ratio. JPEG: the first scan codes every
    /// 8×8 block's DC value with a Huffman code of at least one bit (a progressive file's later scans may skip
    /// blocks, its first may not).
    /// </summary>
    private static long LeastEncodedBytes(FrameEncoding encoding, int width, int height, ReadOnlySpan<byte> data)
    {
        if (encoding == FrameEncoding.Jpeg)
        {
            return (long)((width + 7) / 8) * ((height + 7) / 8) / 8;
        }

        // IHDR follows the 8-byte signature and its 8-byte chunk header: width, height, bit depth, colour type.
        if (data.Length < 26)
        {
            return 0;
        }

        var channels = data[25] switch
        {
            2 => 3,
            4 => 2,
            6 => 4,
            _ => 1,
        };
        var rowBytes = (((long)width * channels * Math.Max(1, (int)data[24])) + 7) / 8;
        return height * (1 + rowBytes) / DeflateMaxRatio;
    }

    private static string Describe(SKCodecResult result) => result switch
    {
        SKCodecResult.IncompleteInput or SKCodecResult.ErrorInInput => "the data is truncated or damaged",
        SKCodecResult.InvalidInput => "the data is not a supported image",
        SKCodecResult.Unimplemented => "this variant of the format is not supported",
        _ => result.ToString(),
    };
}
