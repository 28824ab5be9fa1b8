using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Tests.Frames;

public sealed class FrameGeometryTests
{
    [Theory]
    [InlineData(360, 640, 640, 360, true)]
    [InlineData(360, 640, 360, 640, false)]
    [InlineData(360, 640, 500, 500, false)]
    [InlineData(640, 480, 480, 640, true)]
    [InlineData(320, 320, 640, 360, false)]
    public void IsRotated_OrientationsDiffer_Turns(int inputWidth, int inputHeight, int frameWidth, int frameHeight, bool expected) =>
        Assert.Equal(expected, FrameGeometry.IsRotated(inputWidth, inputHeight, frameWidth, frameHeight));

    [Fact]
    public void Prepare_LandscapeFrameForPortraitInput_TurnedClockwiseAndMappedBack()
    {
        // An 8×4 landscape frame whose pixel value encodes its position; the input is 4×8 portrait: no resampling.
        const int width = 8;
        const int height = 4;
        var gray = new byte[width * height];
        for (var i = 0; i < gray.Length; i++)
        {
            gray[i] = (byte)(i * 7);
        }

        var preparer = new FramePreparer(height, width, 64, rotateToFit: true);
        var frame = preparer.Prepare(FrameInput.Raw(FramePixelFormat.Gray8, width, height, 0, gray));
        var pixels = frame.Floats(width * height);

        for (var y = 0; y < width; y++)
        {
            for (var x = 0; x < height; x++)
            {
                var (ox, oy) = FrameGeometry.ToOriginal(x, y, height, width, width, height, rotated: true);
                var original = gray[(int)MathF.Round(oy) * width + (int)MathF.Round(ox)];
                Assert.Equal(original / 255f, pixels[y * height + x], 1e-6f);
            }
        }

        // Clockwise: the input's top-left shows the frame's bottom-left.
        Assert.Equal(gray[(height - 1) * width] / 255f, pixels[0], 1e-6f);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Prepare_ForAUint8Model_HoldsBytesRoundedByTheOneRule(bool rotate, bool letterbox)
    {
        // A colour frame resized, turned and letterboxed: a uint8 model's frame is the float frame rounded once, in bytes.
        var rgb = new byte[90 * 50 * 3];
        new Random(3).NextBytes(rgb);
        var input = FrameInput.Raw(FramePixelFormat.Rgb24, 90, 50, 0, rgb);
        var asFloats = new FramePreparer(24, 32, 4096, rotateToFit: true);
        var asBytes = new FramePreparer(24, 32, 4096, rotateToFit: true, elementType: VideoMatch.Engine.Inference.InputElementType.UInt8);

        var floats = asFloats.Prepare(input, rotate: rotate, letterbox: letterbox);
        var bytes = asBytes.Prepare(input, rotate: rotate, letterbox: letterbox);

        Assert.Equal(VideoMatch.Engine.Inference.InputElementType.UInt8, bytes.ElementType);
        Assert.Equal(floats.Floats(24 * 32).ToArray().Select(VideoMatch.Engine.Preprocessing.FramePreprocessor.ToByte).ToArray(), bytes.Bytes(24 * 32).ToArray());
        var wrongType = Assert.Throws<InvalidOperationException>(() => bytes.Floats(1).Length);
        Assert.Contains("prepared for a uint8 input", wrongType.Message, StringComparison.Ordinal);
        floats.Release();
        bytes.Release();
        Assert.Throws<ObjectDisposedException>(() => bytes.Bytes(1).Length);
    }

    [Fact]
    public void ToOriginal_NotRotated_ScalesWithHalfPixelCentres()
    {
        var (x, y) = FrameGeometry.ToOriginal(0, 0, 320, 240, 640, 480, rotated: false);

        Assert.Equal((0.5f, 0.5f), (x, y));
    }
}

public sealed class FrameMappingTests
{
    [Fact]
    public void Create_LetterboxWideFrameIntoSquareInput_KeepsAspectAtTheTop()
    {
        var mapping = FrameMapping.Create(64, 64, 160, 90, rotated: false, letterbox: true);

        Assert.Equal((64, 36), (mapping.ContentWidth, mapping.ContentHeight));
        Assert.True(mapping.Letterboxed);
        Assert.True(mapping.Covers(63, 35));
        Assert.False(mapping.Covers(10, 40));
        // Uniform scale 2.5: input pixel centre 10 is original 10.5 · 2.5 − 0.5 on both axes.
        Assert.Equal((25.75f, 25.75f), mapping.ToOriginal(10, 10));
    }

    [Fact]
    public void Create_Stretch_FillsTheInput()
    {
        var mapping = FrameMapping.Create(64, 64, 160, 90, rotated: false, letterbox: false);

        Assert.False(mapping.Letterboxed);
        Assert.True(mapping.Covers(10, 60));
    }

    [Fact]
    public void Prepare_Letterbox_ContentAtTopLeftAndEdgeRowsRepeated()
    {
        // 8×4 gray frame into an 8×8 input: content 8×4, rows 4..7 repeat row 3.
        var gray = Enumerable.Range(0, 32).Select(i => (byte)(i * 8)).ToArray();
        var preparer = new FramePreparer(8, 8, 64);

        var frame = preparer.Prepare(FrameInput.Raw(FramePixelFormat.Gray8, 8, 4, 0, gray), letterbox: true);
        var pixels = frame.Floats(64);

        Assert.Equal((8, 4), (frame.Mapping.ContentWidth, frame.Mapping.ContentHeight));
        for (var y = 0; y < 8; y++)
        {
            for (var x = 0; x < 8; x++)
            {
                Assert.Equal(gray[(Math.Min(y, 3) * 8) + x] / 255f, pixels[y * 8 + x], 1e-6f);
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Prepare_ImposedRotation_OverridesTheFramesOwnOrientation(bool rotate)
    {
        // A portrait 4×8 frame for a portrait 4×8 input would not turn by itself; imposed, it turns (squeezed).
        var gray = Enumerable.Range(0, 32).Select(i => (byte)(i * 7)).ToArray();
        var preparer = new FramePreparer(4, 8, 64, rotateToFit: true);

        var frame = preparer.Prepare(FrameInput.Raw(FramePixelFormat.Gray8, 4, 8, 0, gray), rotate: rotate);

        Assert.Equal(rotate, frame.Rotated);
        var (x, y) = frame.Mapping.ToOriginal(0, 0);
        // Turned clockwise, the input's top-left shows the frame's bottom-left corner (model pixel 2 original rows tall).
        Assert.Equal(rotate ? (-0.25f, 6.5f) : (0f, 0f), (x, y));
    }
}
