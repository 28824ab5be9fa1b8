using System.Buffers;
using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Preprocessing;

/// <summary>
/// Turns raw pixels into the model's input plane exactly as the Hugging Face EfficientLoFTR processor does:
/// antialiased bilinear resize of each channel with 8-bit results (horizontal pass, then vertical, each
/// rounded to 8 bits as Pillow and torchvision's uint8 path do), scale by 1/255, then gray as
/// 0.2989 R + 0.5870 G + 0.1140 B unless all three channels are equal (then the image is left as it is).
/// </summary>
/// <remarks>Thread-safe; scratch comes from <see cref="ArrayPool{T}"/>, so a call allocates nothing.</remarks>
public sealed class FramePreprocessor
{
    private const float Scale = 1f / 255f;

    public FramePreprocessor(int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        Width = width;
        Height = height;
    }

    /// <summary>Output width (the model's input width).</summary>
    public int Width { get; }

    /// <summary>Output height (the model's input height).</summary>
    public int Height { get; }

    /// <summary>Forces the portable path even where AVX2 is available (tests compare the two).</summary>
    internal bool DisableAvx2 { get; init; }

    /// <summary>Writes the gray plane of <paramref name="frame"/> (already validated) into <paramref name="destination"/>.</summary>
    public void Run(in FrameInput frame, Span<float> destination)
    {
        var format = frame.Format ?? throw new ArgumentException("Encoded frames must be decoded first.", nameof(frame));
        if (destination.Length < Width * Height)
        {
            throw new ArgumentException($"Destination holds {destination.Length} values; {Width * Height} needed.", nameof(destination));
        }

        var channels = format == FramePixelFormat.Gray8 ? 1 : 3;
        var plane = Width * Height;
        var horizontal = ResampleAxis.Get(frame.Width, Width);
        var vertical = ResampleAxis.Get(frame.Height, Height);
        var rowsBuffer = ArrayPool<float>.Shared.Rent(channels * frame.Height * Width);
        var outBuffer = channels == 1 ? null : ArrayPool<float>.Shared.Rent(channels * plane);
        try
        {
            var rows = rowsBuffer.AsSpan(0, channels * frame.Height * Width);
            Horizontal(frame, format, horizontal, rows, channels);
            var resized = channels == 1 ? destination[..plane] : outBuffer.AsSpan(0, channels * plane);
            for (var c = 0; c < channels; c++)
            {
                Vertical(rows.Slice(c * frame.Height * Width, frame.Height * Width), vertical, resized.Slice(c * plane, plane));
            }

            if (channels == 1)
            {
                ScaleInPlace(destination[..plane]);
            }
            else
            {
                ToGray(resized[..plane], resized.Slice(plane, plane), resized.Slice(2 * plane, plane), destination[..plane]);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rowsBuffer);
            if (outBuffer is not null)
            {
                ArrayPool<float>.Shared.Return(outBuffer);
            }
        }
    }

    /// <summary>Resizes every source row to <see cref="Width"/> into planar rows of whole numbers 0..255.</summary>
    private unsafe void Horizontal(in FrameInput frame, FramePixelFormat format, ResampleAxis axis, Span<float> rows, int channels)
    {
        var bpp = PixelFormats.BytesPerPixel(format);
        var (offR, offG, offB) = PixelFormats.ChannelOffsets(format);
        var rowsPerPlane = frame.Height * Width;
        var data = frame.Data.Span;
        var vectorRows = Avx2.IsSupported && Fma.IsSupported && !DisableAvx2 && Width >= Vector256<float>.Count;
        fixed (byte* source = data)
        fixed (float* output = rows)
        fixed (float* weights = axis.WeightsByTap)
        fixed (int* pixels = axis.PixelByTap)
        {
            for (var y = 0; y < frame.Height; y++)
            {
                var rowOffset = (long)y * frame.RowStride;
                var row = source + rowOffset;
                var outR = output + (long)y * Width;
                var outG = channels == 1 ? outR : outR + rowsPerPlane;
                var outB = channels == 1 ? outR : outR + 2L * rowsPerPlane;
                if (axis.InSize == axis.OutSize)
                {
                    // Same width: the filter is the identity, so the pixels are the result.
                    for (var x = 0; x < Width; x++)
                    {
                        var pixel = row + x * bpp;
                        outR[x] = pixel[offR];
                        if (channels == 3)
                        {
                            outG[x] = pixel[offG];
                            outB[x] = pixel[offB];
                        }
                    }

                    continue;
                }

                var done = 0;
                // A 4-byte gather at the last pixel reads up to 3 bytes past it: only where the buffer has them.
                if (vectorRows && rowOffset + (long)(frame.Width - 1) * bpp + 4 <= data.Length)
                {
                    done = HorizontalRowAvx2(row, bpp, offR, offG, offB, channels, axis, weights, pixels, outR, outG, outB);
                }

                HorizontalRowScalar(row, bpp, offR, offG, offB, channels, axis, weights, pixels, outR, outG, outB, done);
            }
        }
    }

    private unsafe int HorizontalRowAvx2(byte* row, int bpp, int offR, int offG, int offB, int channels, ResampleAxis axis,
        float* weights, int* pixels, float* outR, float* outG, float* outB)
    {
        var width = Width;
        var taps = axis.Taps;
        var stride = Vector256.Create(bpp);
        var mask = Vector256.Create(0xFF);
        var half = Vector256.Create(0.5f);
        var max = Vector256.Create(255f);
        var shiftR = Vector128.CreateScalar(8 * offR);
        var shiftG = Vector128.CreateScalar(8 * offG);
        var shiftB = Vector128.CreateScalar(8 * offB);
        var x = 0;
        for (; x + Vector256<float>.Count <= width; x += Vector256<float>.Count)
        {
            var accR = Vector256<float>.Zero;
            var accG = Vector256<float>.Zero;
            var accB = Vector256<float>.Zero;
            for (var k = 0; k < taps; k++)
            {
                var index = Avx2.MultiplyLow(Avx.LoadVector256(pixels + k * width + x), stride);
                var packed = Avx2.GatherVector256((int*)row, index, 1);
                var w = Avx.LoadVector256(weights + k * width + x);
                accR = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.And(Avx2.ShiftRightLogical(packed, shiftR), mask)), w, accR);
                if (channels == 3)
                {
                    accG = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.And(Avx2.ShiftRightLogical(packed, shiftG), mask)), w, accG);
                    accB = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.And(Avx2.ShiftRightLogical(packed, shiftB), mask)), w, accB);
                }
            }

            Avx.Store(outR + x, Avx.Min(Avx.Floor(Avx.Add(accR, half)), max));
            if (channels == 3)
            {
                Avx.Store(outG + x, Avx.Min(Avx.Floor(Avx.Add(accG, half)), max));
                Avx.Store(outB + x, Avx.Min(Avx.Floor(Avx.Add(accB, half)), max));
            }
        }

        return x;
    }

    private unsafe void HorizontalRowScalar(byte* row, int bpp, int offR, int offG, int offB, int channels, ResampleAxis axis,
        float* weights, int* pixels, float* outR, float* outG, float* outB, int from)
    {
        var width = Width;
        for (var x = from; x < width; x++)
        {
            float accR = 0f, accG = 0f, accB = 0f;
            for (var k = 0; k < axis.Taps; k++)
            {
                var pixel = row + pixels[k * width + x] * bpp;
                var w = weights[k * width + x];
                accR = MathF.FusedMultiplyAdd(pixel[offR], w, accR);
                if (channels == 3)
                {
                    accG = MathF.FusedMultiplyAdd(pixel[offG], w, accG);
                    accB = MathF.FusedMultiplyAdd(pixel[offB], w, accB);
                }
            }

            outR[x] = Round8(accR);
            if (channels == 3)
            {
                outG[x] = Round8(accG);
                outB[x] = Round8(accB);
            }
        }
    }

    /// <summary>Resizes one plane of rows (source height × Width) to Height rows.</summary>
    private void Vertical(ReadOnlySpan<float> rows, ResampleAxis axis, Span<float> output)
    {
        var width = Width;
        if (axis.InSize == axis.OutSize)
        {
            rows[..output.Length].CopyTo(output);
            return;
        }

        var half = new Vector<float>(0.5f);
        var max = new Vector<float>(255f);
        for (var y = 0; y < Height; y++)
        {
            var start = axis.Start[y];
            var count = axis.Count[y];
            var weights = axis.WeightsByOutput.AsSpan(y * axis.Taps, count);
            var target = output.Slice(y * width, width);
            var x = 0;
            for (; x + Vector<float>.Count <= width; x += Vector<float>.Count)
            {
                var acc = Vector<float>.Zero;
                for (var k = 0; k < count; k++)
                {
                    acc = Vector.FusedMultiplyAdd(new Vector<float>(rows.Slice((start + k) * width + x, Vector<float>.Count)), new Vector<float>(weights[k]), acc);
                }

                Vector.Min(Vector.Floor(acc + half), max).CopyTo(target[x..]);
            }

            for (; x < width; x++)
            {
                var acc = 0f;
                for (var k = 0; k < count; k++)
                {
                    acc = MathF.FusedMultiplyAdd(rows[(start + k) * width + x], weights[k], acc);
                }

                target[x] = Round8(acc);
            }
        }
    }

    private static void ScaleInPlace(Span<float> plane)
    {
        var scale = new Vector<float>(Scale);
        var i = 0;
        for (; i + Vector<float>.Count <= plane.Length; i += Vector<float>.Count)
        {
            (new Vector<float>(plane[i..]) * scale).CopyTo(plane[i..]);
        }

        for (; i < plane.Length; i++)
        {
            plane[i] *= Scale;
        }
    }

    private static void ToGray(ReadOnlySpan<float> r, ReadOnlySpan<float> g, ReadOnlySpan<float> b, Span<float> output)
    {
        if (r.SequenceEqual(g) && g.SequenceEqual(b))
        {
            r.CopyTo(output);
            ScaleInPlace(output);
            return;
        }

        var scale = new Vector<float>(Scale);
        var wr = new Vector<float>(0.2989f);
        var wg = new Vector<float>(0.5870f);
        var wb = new Vector<float>(0.1140f);
        var i = 0;
        for (; i + Vector<float>.Count <= output.Length; i += Vector<float>.Count)
        {
            var vr = new Vector<float>(r[i..]) * scale;
            var vg = new Vector<float>(g[i..]) * scale;
            var vb = new Vector<float>(b[i..]) * scale;
            (vr * wr + vg * wg + vb * wb).CopyTo(output[i..]);
        }

        for (; i < output.Length; i++)
        {
            output[i] = r[i] * Scale * 0.2989f + g[i] * Scale * 0.5870f + b[i] * Scale * 0.1140f;
        }
    }

    private static float Round8(float value) => MathF.Min(MathF.Floor(value + 0.5f), 255f);
}
