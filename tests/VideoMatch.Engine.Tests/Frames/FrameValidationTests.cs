using SkiaSharp;
using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Tests.Frames;

public sealed class FrameValidationTests
{
    private static readonly FramePreparer Preparer = new(32, 32, maxDimension: 4096);

    public static TheoryData<string, FramePixelFormat, int, int, int, int, string> BadRawFrames => new()
    {
        { "truncated", FramePixelFormat.Rgb24, 10, 10, 0, 299, "truncated" },
        { "too long", FramePixelFormat.Rgb24, 10, 10, 0, 400, "does not match the data" },
        { "zero width", FramePixelFormat.Gray8, 0, 10, 0, 0, "empty" },
        { "zero height", FramePixelFormat.Gray8, 10, 0, 0, 0, "empty" },
        { "over the limit", FramePixelFormat.Gray8, 5000, 1, 0, 5000, "limit of 4096" },
        { "stride below a row", FramePixelFormat.Rgba32, 10, 2, 30, 80, "stride 30" },
        { "gray bytes sent as RGB", FramePixelFormat.Rgb24, 10, 10, 0, 100, "truncated" },
    };

    [Theory]
    [MemberData(nameof(BadRawFrames))]
    public void Prepare_InconsistentRawFrame_RejectsWithReason(string _, FramePixelFormat format, int width, int height, int stride, int bytes, string reason)
    {
        var input = FrameInput.Raw(format, width, height, stride, new byte[bytes]);

        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(input));

        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Prepare_Png_EqualsSamePixelsSentRaw()
    {
        var rgba = Preprocessing.FramePreprocessorTests.RandomBytes(24 * 16 * 4, seed: 2);
        for (var i = 3; i < rgba.Length; i += 4)
        {
            rgba[i] = 255;
        }

        var png = Encode(rgba, 24, 16, SKEncodedImageFormat.Png);

        var fromPng = Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Png, png), sequence: 4);
        var fromRaw = Preparer.Prepare(FrameInput.Raw(FramePixelFormat.Rgba32, 24, 16, 0, rgba));

        Assert.Equal(fromRaw.Floats(32 * 32).ToArray(), fromPng.Floats(32 * 32).ToArray());
        Assert.Equal((24, 16, 4UL), (fromPng.OriginalWidth, fromPng.OriginalHeight, fromPng.Sequence));
    }

    [Fact]
    public void Prepare_Jpeg_DecodesToOriginalSize()
    {
        var rgba = new byte[40 * 30 * 4];
        Array.Fill(rgba, (byte)128);
        var jpeg = Encode(rgba, 40, 30, SKEncodedImageFormat.Jpeg);

        var frame = Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, jpeg));

        Assert.Equal((40, 30), (frame.OriginalWidth, frame.OriginalHeight));
        Assert.InRange(frame.Floats(32 * 32)[0], 120f / 255f, 136f / 255f);
    }

    [Fact]
    public void Prepare_CorruptJpeg_Rejects()
    {
        var rgba = new byte[40 * 30 * 4];
        var jpeg = Encode(rgba, 40, 30, SKEncodedImageFormat.Jpeg);
        var corrupt = jpeg.AsSpan(0, 40).ToArray();

        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, corrupt)));

        Assert.Contains("JPEG", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new byte[0], "empty")]
    [InlineData(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, "could not be read")]
    public void Prepare_NotAnImage_Rejects(byte[] data, string reason)
    {
        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Png, data)));

        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Prepare_PngDeclaredAsJpeg_RejectsNamingBoth()
    {
        var png = Encode(new byte[8 * 8 * 4], 8, 8, SKEncodedImageFormat.Png);

        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, png)));

        Assert.Contains("declared JPEG but its data is Png", error.Message, StringComparison.Ordinal);
    }

    internal static byte[] Encode(byte[] rgba, int width, int height, SKEncodedImageFormat format)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 90);
        return data.ToArray();
    }
}
