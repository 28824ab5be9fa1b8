using System.Buffers;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace VideoMatch.Engine.Frames;

/// <summary>Decodes JPEG and PNG frames to raw pixels with SkiaSharp, checking size limits before decoding.</summary>
internal static class ImageDecoder
{
    /// <summary>A decoded image whose pixels live in a pooled buffer until disposed.</summary>
    public sealed class Decoded(byte[] buffer, FrameInput frame) : IDisposable
    {
        private byte[]? _buffer = buffer;

        public FrameInput Frame { get; } = frame;

        public void Dispose()
        {
            var buffer = Interlocked.Exchange(ref _buffer, null);
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    public static unsafe Decoded Decode(FrameEncoding encoding, ReadOnlyMemory<byte> data, int maxDimension)
    {
        var name = encoding == FrameEncoding.Jpeg ? "JPEG" : "PNG";
        if (data.IsEmpty)
        {
            throw new FrameRejectedException($"The {name} image is empty (0 bytes).");
        }

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
        if (width <= 0 || height <= 0)
        {
            throw new FrameRejectedException($"The {name} header declares an empty image ({width}×{height}).");
        }

        if (width > maxDimension || height > maxDimension)
        {
            throw new FrameRejectedException($"The {name} image is {width}×{height}, over the server's limit of {maxDimension} pixels per side; downscale it first.");
        }

        var gray = codec.Info.ColorType == SKColorType.Gray8;
        var format = gray ? FramePixelFormat.Gray8 : FramePixelFormat.Rgba32;
        var info = new SKImageInfo(width, height, gray ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var bytes = info.BytesSize;
        var buffer = ArrayPool<byte>.Shared.Rent(bytes);
        try
        {
            SKCodecResult decodeResult;
            fixed (byte* target = buffer)
            {
                decodeResult = codec.GetPixels(info, (IntPtr)target);
            }

            if (decodeResult != SKCodecResult.Success)
            {
                throw new FrameRejectedException($"The {name} image could not be decoded ({Describe(decodeResult)}).");
            }

            return new Decoded(buffer, FrameInput.Raw(format, width, height, info.RowBytes, buffer.AsMemory(0, bytes)));
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    private static string Describe(SKCodecResult result) => result switch
    {
        SKCodecResult.IncompleteInput or SKCodecResult.ErrorInInput => "the data is truncated or damaged",
        SKCodecResult.InvalidInput => "the data is not a supported image",
        SKCodecResult.Unimplemented => "this variant of the format is not supported",
        _ => result.ToString(),
    };
}
