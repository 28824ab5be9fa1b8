using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Preprocessing;

namespace VideoMatch.Engine.Tests.Preprocessing;

public sealed class FramePreprocessorTests
{
    [Fact]
    public void Run_Gray8HalvedWidth_MatchesHandComputedPillowValues()
    {
        // Triangle filter widened ×2: output 0 weighs pixels 0,1,2 as 3:3:1, output 1 weighs 1,2,3 as 1:3:3.
        byte[] pixels = [0, 100, 200, 255];
        var output = new float[2];

        new FramePreprocessor(2, 1).Run(FrameInput.Raw(FramePixelFormat.Gray8, 4, 1, 0, pixels), output);

        Assert.Equal(71f / 255f, output[0], 6);   // (3·0 + 3·100 + 200) / 7 = 71.4 → 71
        Assert.Equal(209f / 255f, output[1], 6);  // (100 + 3·200 + 3·255) / 7 = 209.3 → 209
    }

    [Fact]
    public void Run_Gray8AtModelSizeWithStride_IsPixelOver255()
    {
        const int width = 75;
        const int height = 9;
        var padded = FramePreprocessorTests.RandomBytes(80 * height, seed: 4);
        var output = new float[width * height];

        new FramePreprocessor(width, height).Run(FrameInput.Raw(FramePixelFormat.Gray8, width, height, 80, padded), output);

        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                Assert.Equal(padded[y * 80 + x] * (1f / 255f), output[y * width + x]);
            }
        }
    }

    [Fact]
    public void Run_RgbPixel_UsesNtscWeightsAfterScaling()
    {
        byte[] pixels = [10, 200, 30];
        var output = new float[1];

        new FramePreprocessor(1, 1).Run(FrameInput.Raw(FramePixelFormat.Rgb24, 1, 1, 0, pixels), output);

        Assert.Equal(0.2989 * 10 / 255 + 0.5870 * 200 / 255 + 0.1140 * 30 / 255, output[0], 1e-6);
    }

    [Fact]
    public void Run_EqualChannels_LeavesImageUnweightedAsHuggingFaceDoes()
    {
        var rgb = new byte[12 * 10 * 3];
        for (var i = 0; i < rgb.Length; i++)
        {
            rgb[i] = (byte)(i / 3 * 7 % 256);
        }

        var fromRgb = new float[8 * 8];
        var fromGray = new float[8 * 8];
        var gray = new byte[12 * 10];
        for (var i = 0; i < gray.Length; i++)
        {
            gray[i] = rgb[3 * i];
        }

        var preprocessor = new FramePreprocessor(8, 8);
        preprocessor.Run(FrameInput.Raw(FramePixelFormat.Rgb24, 12, 10, 0, rgb), fromRgb);
        preprocessor.Run(FrameInput.Raw(FramePixelFormat.Gray8, 12, 10, 0, gray), fromGray);

        Assert.Equal(fromGray, fromRgb);
    }

    [Fact]
    public void Run_GrayTopHalfColourBottomHalf_ConvertsEveryRowToGray()
    {
        // Not a gray image as a whole, so Hugging Face converts all of it, the equal-channel rows included.
        const int width = 40;
        const int height = 30;
        var rgb = RandomBytes(width * height * 3, seed: 8);
        for (var p = 0; p < width * height / 2; p++)
        {
            rgb[3 * p + 1] = rgb[3 * p];
            rgb[3 * p + 2] = rgb[3 * p];
        }

        var output = new float[20 * 16];
        new FramePreprocessor(20, 16).Run(FrameInput.Raw(FramePixelFormat.Rgb24, width, height, 0, rgb), output);

        var expected = ReferencePreprocess(rgb, width, height, 20, 16);
        for (var i = 0; i < 20 * 6; i++)
        {
            // The top rows come only from equal-channel source rows: exactly the gray formula of their value.
            Assert.Equal(expected[i], output[i], 1e-6);
        }

        Assert.All(Enumerable.Range(0, output.Length), i => Assert.True(Math.Abs(output[i] - expected[i]) <= 1.0 / 255 + 1e-6));
    }

    [Theory]
    [InlineData(1280, 720, 64, 48)]
    [InlineData(37, 23, 21, 12)]
    [InlineData(50, 30, 64, 48)]
    [InlineData(97, 61, 97, 40)]
    [InlineData(8, 8, 31, 17)]
    public void Run_RandomRgb_MatchesIndependentReference(int inWidth, int inHeight, int outWidth, int outHeight)
    {
        var rgb = RandomBytes(inWidth * inHeight * 3, seed: inWidth * 31 + inHeight);
        var output = new float[outWidth * outHeight];

        new FramePreprocessor(outWidth, outHeight).Run(FrameInput.Raw(FramePixelFormat.Rgb24, inWidth, inHeight, 0, rgb), output);

        var expected = ReferencePreprocess(rgb, inWidth, inHeight, outWidth, outHeight);
        var exact = 0;
        for (var i = 0; i < output.Length; i++)
        {
            var difference = Math.Abs(output[i] - expected[i]);
            Assert.True(difference <= 1.0 / 255 + 1e-6, $"pixel {i}: {output[i]} vs {expected[i]}");
            exact += difference < 1e-6 ? 1 : 0;
        }

        // Rational scales put some outputs exactly halfway between two 8-bit levels; there the last bit of the
        // weights decides (Pillow's fixed-point weights decide it their own way), so a tie may round either way.
        Assert.True(exact >= output.Length * 0.95, $"only {exact}/{output.Length} pixels equal the reference");
    }

    [Theory]
    [InlineData(FramePixelFormat.Rgb24)]
    [InlineData(FramePixelFormat.Gray8)]
    [InlineData(FramePixelFormat.Rgba32)]
    public void Run_VectorAndPortablePaths_GiveIdenticalResults(FramePixelFormat format)
    {
        const int width = 203;
        const int height = 77;
        var stride = width * PixelFormats.BytesPerPixel(format);
        var pixels = RandomBytes(stride * height, seed: 11);
        var fast = new float[61 * 40];
        var portable = new float[61 * 40];

        new FramePreprocessor(61, 40).Run(FrameInput.Raw(format, width, height, 0, pixels), fast);
        new FramePreprocessor(61, 40) { DisableAvx2 = true }.Run(FrameInput.Raw(format, width, height, 0, pixels), portable);

        Assert.Equal(portable, fast);
    }

    [Theory]
    [InlineData(FramePixelFormat.Gray8, 75, 9, 0)]        // the model's size: copied
    [InlineData(FramePixelFormat.Gray8, 75, 9, 80)]       // the model's size with padded rows
    [InlineData(FramePixelFormat.Gray8, 203, 77, 0)]      // resized: whole 8-bit levels
    [InlineData(FramePixelFormat.Gray8, 40, 5, 0)]        // enlarged
    [InlineData(FramePixelFormat.Rgb24, 203, 77, 0)]      // colour: gray rounded once
    [InlineData(FramePixelFormat.Rgba32, 75, 9, 0)]       // colour at the model's size
    public void Run_IntoBytes_IsTheFloatPlaneRoundedByTheOneRule(FramePixelFormat format, int width, int height, int stride)
    {
        var rowBytes = width * PixelFormats.BytesPerPixel(format);
        var pixels = RandomBytes(Math.Max(stride, rowBytes) * height, seed: 21);
        var frame = FrameInput.Raw(format, width, height, stride, pixels);
        var floats = new float[75 * 9];
        var bytes = new byte[75 * 9];

        new FramePreprocessor(75, 9).Run(frame, floats);
        new FramePreprocessor(75, 9).Run(frame, bytes);

        Assert.Equal(floats.Select(FramePreprocessor.ToByte).ToArray(), bytes);
    }

    [Fact]
    public void Run_Gray8AtModelSizeIntoBytes_IsThePixelsThemselves()
    {
        // A uint8 model gets the client's bytes: no trip through [0, 1] and back.
        var padded = RandomBytes(80 * 9, seed: 4);
        var bytes = new byte[75 * 9];

        new FramePreprocessor(75, 9).Run(FrameInput.Raw(FramePixelFormat.Gray8, 75, 9, 80, padded), bytes);

        for (var y = 0; y < 9; y++)
        {
            Assert.Equal(padded.AsSpan(y * 80, 75).ToArray(), bytes.AsSpan(y * 75, 75).ToArray());
        }
    }

    [Fact]
    public void ToByte_EveryLevelOver255_GivesTheLevelBack()
    {
        for (var level = 0; level < 256; level++)
        {
            Assert.Equal(level, FramePreprocessor.ToByte(level / 255f));
            Assert.Equal(level, FramePreprocessor.ToByte(level * (1f / 255f)));
        }

        Assert.Equal(255, FramePreprocessor.ToByte(1.5f));
    }

    [Fact]
    public void Run_SameImageInEveryColourLayout_GivesSameResult()
    {
        const int width = 40;
        const int height = 30;
        var rgb = RandomBytes(width * height * 3, seed: 5);
        var bgr = new byte[rgb.Length];
        var rgba = new byte[width * height * 4];
        for (var p = 0; p < width * height; p++)
        {
            bgr[3 * p] = rgb[3 * p + 2];
            bgr[3 * p + 1] = rgb[3 * p + 1];
            bgr[3 * p + 2] = rgb[3 * p];
            rgba[4 * p] = rgb[3 * p];
            rgba[4 * p + 1] = rgb[3 * p + 1];
            rgba[4 * p + 2] = rgb[3 * p + 2];
            rgba[4 * p + 3] = 77;
        }

        var preprocessor = new FramePreprocessor(16, 16);
        var fromRgb = new float[256];
        var fromBgr = new float[256];
        var fromRgba = new float[256];
        preprocessor.Run(FrameInput.Raw(FramePixelFormat.Rgb24, width, height, 0, rgb), fromRgb);
        preprocessor.Run(FrameInput.Raw(FramePixelFormat.Bgr24, width, height, 0, bgr), fromBgr);
        preprocessor.Run(FrameInput.Raw(FramePixelFormat.Rgba32, width, height, 0, rgba), fromRgba);

        Assert.Equal(fromRgb, fromBgr);
        Assert.Equal(fromRgb, fromRgba);
    }

    [Fact]
    public void Run_PaddedRows_IgnoresPadding()
    {
        const int width = 33;
        const int height = 20;
        const int stride = 40 * 3;
        var tight = RandomBytes(width * height * 3, seed: 9);
        var padded = new byte[stride * height];
        for (var y = 0; y < height; y++)
        {
            tight.AsSpan(y * width * 3, width * 3).CopyTo(padded.AsSpan(y * stride));
            padded.AsSpan(y * stride + width * 3, stride - width * 3).Fill(255);
        }

        var preprocessor = new FramePreprocessor(16, 8);
        var fromTight = new float[128];
        var fromPadded = new float[128];
        preprocessor.Run(FrameInput.Raw(FramePixelFormat.Rgb24, width, height, 0, tight), fromTight);
        preprocessor.Run(FrameInput.Raw(FramePixelFormat.Rgb24, width, height, stride, padded), fromPadded);

        Assert.Equal(fromTight, fromPadded);
    }

    internal static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>
    /// Pillow's antialiased bilinear resize written out directly in double precision: per output pixel, the
    /// triangle filter widened by the scale, taps normalised; horizontal pass then vertical, each rounded to 8 bits.
    /// </summary>
    private static double[] ReferencePreprocess(byte[] rgb, int inW, int inH, int outW, int outH)
    {
        var horizontal = new double[3, inH, outW];
        for (var c = 0; c < 3; c++)
        {
            for (var y = 0; y < inH; y++)
            {
                for (var x = 0; x < outW; x++)
                {
                    horizontal[c, y, x] = Round8(Filter(inW, outW, x, i => rgb[3 * (y * inW + i) + c]));
                }
            }
        }

        var output = new double[outW * outH];
        for (var y = 0; y < outH; y++)
        {
            for (var x = 0; x < outW; x++)
            {
                var r = Round8(Filter(inH, outH, y, i => horizontal[0, i, x])) / 255.0;
                var g = Round8(Filter(inH, outH, y, i => horizontal[1, i, x])) / 255.0;
                var b = Round8(Filter(inH, outH, y, i => horizontal[2, i, x])) / 255.0;
                output[y * outW + x] = 0.2989 * r + 0.5870 * g + 0.1140 * b;
            }
        }

        return output;
    }

    private static double Filter(int inSize, int outSize, int o, Func<int, double> source)
    {
        var scale = (double)inSize / outSize;
        var width = Math.Max(scale, 1.0);
        var centre = (o + 0.5) * scale;
        double sum = 0, total = 0;
        for (var i = 0; i < inSize; i++)
        {
            var distance = Math.Abs(i + 0.5 - centre) / width;
            var weight = Math.Max(0.0, 1.0 - distance);
            sum += weight * source(i);
            total += weight;
        }

        return sum / total;
    }

    private static double Round8(double value) => Math.Min(Math.Floor(value + 0.5), 255);
}
