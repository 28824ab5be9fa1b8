using System.Buffers.Binary;
using SkiaSharp;
using VideoMatch.Engine.Frames;
using VideoMatch.Tests.Frames;

namespace VideoMatch.Engine.Tests.Frames;

/// <summary>What the decoder refuses before (or instead of) decoding: truncation, damage, bombs, the pixel limit.</summary>
public sealed class ImageDecoderTests
{
    private static readonly FramePreparer Preparer = new(64, 48, maxDimension: 8192, maxPixels: 4096L * 2160);

    /// <summary>A 320×240 progressive JPEG (made with Pillow from a smooth synthetic pattern, quality 60).</summary>
    private static byte[] Progressive => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Frames", "Data", "progressive-320x240.jpg"));

    private static byte[] Baseline
    {
        get
        {
            var rgba = Preprocessing.FramePreprocessorTests.RandomBytes(320 * 240 * 4, seed: 2);
            return FrameValidationTests.Encode(rgba, 320, 240, SKEncodedImageFormat.Jpeg);
        }
    }

    /// <summary>A 320×240 baseline JPEG of a smooth synthetic scene, whose scan is mostly short Huffman codes.</summary>
    private static byte[] Smooth
    {
        get
        {
            var gray = new byte[320 * 240];
            new VideoMatch.Synthetic.TexturedScene(seed: 3).RenderGray(320, 240, System.Numerics.Matrix3x2.Identity, gray);
            var rgba = new byte[320 * 240 * 4];
            for (var i = 0; i < gray.Length; i++)
            {
                rgba[4 * i] = rgba[(4 * i) + 1] = rgba[(4 * i) + 2] = gray[i];
                rgba[(4 * i) + 3] = 255;
            }

            return FrameValidationTests.Encode(rgba, 320, 240, SKEncodedImageFormat.Jpeg);
        }
    }

    [Theory]
    [InlineData("progressive")]
    [InlineData("baseline")]
    [InlineData("smooth")]
    public void Prepare_WholeJpeg_DecodesToItsSizeAsRgb(string kind)
    {
        var data = kind switch { "progressive" => Progressive, "baseline" => Baseline, _ => Smooth };

        using var decoded = ImageDecoder.Decode(FrameEncoding.Jpeg, data, 8192);

        Assert.Equal((320, 240, FramePixelFormat.Rgb24), (decoded.Frame.Width, decoded.Frame.Height, decoded.Frame.Format!.Value));
        Assert.Equal(320 * 240 * 3, ImageDecoder.DecodedBytes(data));
    }

    [Fact]
    public void Prepare_WholeProgressiveJpeg_Accepted()
    {
        var frame = Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, Progressive));

        Assert.Equal((320, 240), (frame.OriginalWidth, frame.OriginalHeight));
        frame.Release();
    }

    [Theory]
    [InlineData("progressive", 0.3)]
    [InlineData("progressive", 0.6)]
    [InlineData("progressive", 0.9)]
    [InlineData("progressive", 0.995)]
    [InlineData("baseline", 0.3)]
    [InlineData("baseline", 0.995)]
    public void Prepare_TruncatedJpeg_RejectedAsIncomplete(string kind, double kept)
    {
        // SkiaSharp decoded a cut progressive JPEG "successfully", with grey where the data stopped.
        var whole = kind == "progressive" ? Progressive : Baseline;
        var cut = whole.AsSpan(0, (int)(whole.Length * kept)).ToArray();

        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, cut)));

        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("progressive", 0.5)]
    [InlineData("progressive", 0.9)]
    [InlineData("baseline", 0.5)]
    [InlineData("baseline", 0.9)]
    public void Prepare_JpegCutShortWithAnEndOfImageMarkerAfterTheCut_RejectedByLibjpeg(string kind, double kept)
    {
        // The marker structure is whole again after the cut; only the decoder can tell the scan ran short.
        var whole = kind == "progressive" ? Progressive : Baseline;
        var cut = whole.AsSpan(0, (int)(whole.Length * kept)).ToArray().Concat(new byte[] { 0xFF, 0xD9 }).ToArray();

        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, cut)));

        Assert.Contains("The JPEG image is incomplete or damaged (libjpeg warning:", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(640, 480)]
    [InlineData(1920, 1080)]
    [InlineData(4096, 2160)]
    public void Prepare_JpegHeaderDeclaringMorePixelsThanItsScanHolds_Rejected(int width, int height)
    {
        // A 320×240 baseline JPEG whose frame header is patched to a larger size: enough bytes for the byte-count
        // floor at 640×480, so the decoder itself must notice that the scan ends early.
        var patched = Baseline;
        var sof = patched.AsSpan().IndexOf(new byte[] { 0xFF, 0xC0 });
        BinaryPrimitives.WriteUInt16BigEndian(patched.AsSpan(sof + 5), (ushort)height);
        BinaryPrimitives.WriteUInt16BigEndian(patched.AsSpan(sof + 7), (ushort)width);

        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, patched)));

        Assert.Matches("incomplete or damaged|fewer than any complete JPEG", error.Message);
    }

    [Fact]
    public void Prepare_JpegWithBitsFlippedInsideItsScan_RejectedAsCorrupt()
    {
        // The marker structure stays whole (no 0xFF byte is made); libjpeg's Huffman decoder reports the damage.
        var damaged = Smooth;
        var scan = damaged.AsSpan().IndexOf(new byte[] { 0xFF, 0xDA }) + 20;
        for (var i = scan; i < damaged.Length - 2; i += 97)
        {
            if (damaged[i] is not (0xFF or 0xFE or 0x7F))
            {
                damaged[i] ^= 0x80;
            }
        }

        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, damaged)));

        Assert.Contains("libjpeg warning: Corrupt JPEG data", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Prepare_JpegWithoutEndOfImage_Rejected()
    {
        var whole = Progressive;

        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, whole.AsSpan(0, whole.Length - 2).ToArray())));

        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Prepare_JpegWithAStrayMarkerInItsImageData_RejectedAsDamaged()
    {
        // Baseline JPEGs with damaged entropy data also decode "successfully" in SkiaSharp.
        var damaged = Baseline;
        damaged[damaged.Length / 2] = 0xFF;
        damaged[(damaged.Length / 2) + 1] = 0x3C;

        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, damaged)));

        Assert.Contains("libjpeg warning: Corrupt JPEG data", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Prepare_JpegHeaderClaiming8192SquaredOver320x240Data_RejectedBeforeDecoding()
    {
        // Every 8×8 block costs at least a bit: a million blocks cannot fit in 22 KB.
        var claim = Progressive;
        var sof = claim.AsSpan().IndexOf(new byte[] { 0xFF, 0xC2 });
        BinaryPrimitives.WriteUInt16BigEndian(claim.AsSpan(sof + 5), 8192);
        BinaryPrimitives.WriteUInt16BigEndian(claim.AsSpan(sof + 7), 8192);
        var allocated = GC.GetAllocatedBytesForCurrentThread();

        var error = Assert.Throws<FrameRejectedException>(() => new FramePreparer(64, 48, maxDimension: 8192).Prepare(FrameInput.Encoded(FrameEncoding.Jpeg, claim)));

        Assert.Contains("declares 8192×8192 pixels but the image holds only", error.Message, StringComparison.Ordinal);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 4_000_000, "refused before a pixel buffer was allocated");
    }

    [Fact]
    public void Prepare_PngBombDeclaring8192Squared_RejectedBeforeAllocating()
    {
        // 196 KB declaring 8192×8192 RGBA: 268 MB of pixels, which deflate cannot pack into so few bytes.
        var bomb = ImageBombs.PngDeclaring(8192, 8192, 196 * 1024);
        var allocated = GC.GetAllocatedBytesForCurrentThread();

        var error = Assert.Throws<FrameRejectedException>(() => new FramePreparer(64, 48, maxDimension: 8192).Prepare(FrameInput.Encoded(FrameEncoding.Png, bomb)));

        Assert.Contains("declares 8192×8192 pixels but the image holds only", error.Message, StringComparison.Ordinal);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 4_000_000, "refused before a pixel buffer was allocated");
    }

    [Theory]
    [InlineData(4097, 2160)]
    [InlineData(8192, 8192)]
    public void Prepare_OverThePixelLimit_RejectedFromTheHeader(int width, int height)
    {
        var error = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Encoded(FrameEncoding.Png, ImageBombs.PngDeclaring(width, height, 64, colourType: 0))));
        var raw = Assert.Throws<FrameRejectedException>(() => Preparer.Prepare(FrameInput.Raw(FramePixelFormat.Gray8, width, height, 0, new byte[width * height])));

        Assert.Contains("over the server's limit of 8847360 pixels per image", error.Message, StringComparison.Ordinal);
        Assert.Contains("exceeds the server's limit of 8847360 pixels per image", raw.Message, StringComparison.Ordinal);
    }
}
