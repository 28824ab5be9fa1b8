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
        var pixels = frame.Pixels(width * height);

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

    [Fact]
    public void ToOriginal_NotRotated_ScalesWithHalfPixelCentres()
    {
        var (x, y) = FrameGeometry.ToOriginal(0, 0, 320, 240, 640, 480, rotated: false);

        Assert.Equal((0.5f, 0.5f), (x, y));
    }
}
