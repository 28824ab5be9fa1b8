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

    /// <summary>Writes the gray plane of <paramref name="frame"/> (already validated) in [0, 1] into <paramref name="destination"/>: a float graph's input.</summary>
    public void Run(in FrameInput frame, Span<float> destination)
    {
        var format = Check(frame, destination.Length);
        if (format == FramePixelFormat.Gray8 && frame.Width == Width && frame.Height == Height)
        {
            // Already the model's size and gray (the format clients are told to prefer): the result is pixel / 255.
            ScaleRows(frame, destination);
            return;
        }

        Resize(frame, format, destination[..(Width * Height)], keepLevels: false);
    }

    /// <summary>
    /// Writes the gray plane of <paramref name="frame"/> (already validated) as bytes 0..255 into
    /// <paramref name="destination"/>: a uint8 graph's input, equal to <see cref="ToByte"/> of what the float
    /// <see cref="Run(in FrameInput, Span{float})"/> writes. Gray frames keep their 8-bit levels throughout (resized
    /// levels are whole numbers, and a frame of the model's size is copied); a colour frame's gray is rounded once.
    /// </summary>
    public void Run(in FrameInput frame, Span<byte> destination)
    {
        var format = Check(frame, destination.Length);
        var plane = Width * Height;
        if (format == FramePixelFormat.Gray8 && frame.Width == Width && frame.Height == Height)
        {
            var data = frame.Data.Span;
            for (var y = 0; y < Height; y++)
            {
                data.Slice(y * frame.RowStride, Width).CopyTo(destination.Slice(y * Width, Width));
            }

            return;
        }

        var values = ArrayPool<float>.Shared.Rent(plane);
        try
        {
            var levels = Resize(frame, format, values.AsSpan(0, plane), keepLevels: true);
            ToBytes(values.AsSpan(0, plane), destination[..plane], levels);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(values);
        }
    }

    /// <summary>The one rule for a pixel in [0, 1] as the byte a uint8 graph takes: round half up, clamp at 255.</summary>
    public static byte ToByte(float value) => (byte)MathF.Min(MathF.Floor((value * 255f) + 0.5f), 255f);

    /// <summary><see cref="ToByte"/> of every value in [0, 1], or, for 8-bit <paramref name="levels"/>, the level itself; vectorised.</summary>
    private static void ToBytes(ReadOnlySpan<float> values, Span<byte> bytes, bool levels)
    {
        var scale = new Vector<float>(levels ? 1f : 255f);
        var half = new Vector<float>(levels ? 0f : 0.5f);
        var max = new Vector<float>(255f);
        var lanes = Vector<float>.Count;
        var i = 0;
        for (; i + (4 * lanes) <= values.Length; i += 4 * lanes)
        {
            var a = Vector.ConvertToUInt32(Vector.Min(Vector.Floor((new Vector<float>(values[i..]) * scale) + half), max));
            var b = Vector.ConvertToUInt32(Vector.Min(Vector.Floor((new Vector<float>(values[(i + lanes)..]) * scale) + half), max));
            var c = Vector.ConvertToUInt32(Vector.Min(Vector.Floor((new Vector<float>(values[(i + (2 * lanes))..]) * scale) + half), max));
            var d = Vector.ConvertToUInt32(Vector.Min(Vector.Floor((new Vector<float>(values[(i + (3 * lanes))..]) * scale) + half), max));
            Vector.Narrow(Vector.Narrow(a, b), Vector.Narrow(c, d)).CopyTo(bytes[i..]);
        }

        for (; i < values.Length; i++)
        {
            bytes[i] = levels ? (byte)values[i] : ToByte(values[i]);
        }
    }

    private FramePixelFormat Check(in FrameInput frame, int destinationLength)
    {
        var format = frame.Format ?? throw new ArgumentException("Encoded frames must be decoded first.", nameof(frame));
        if (destinationLength < Width * Height)
        {
            throw new ArgumentException($"Destination holds {destinationLength} values; {Width * Height} needed.", nameof(destinationLength));
        }

        return format;
    }

    /// <summary>
    /// Resizes into <paramref name="destination"/> (one plane). Returns true when it holds 8-bit levels 0..255 (a gray
    /// frame with <paramref name="keepLevels"/>), false when it holds gray in [0, 1].
    /// </summary>
    private bool Resize(in FrameInput frame, FramePixelFormat format, Span<float> destination, bool keepLevels)
    {
        var channels = format == FramePixelFormat.Gray8 ? 1 : 3;
        var horizontal = ResampleAxis.Get(frame.Width, Width);
        var vertical = ResampleAxis.Get(frame.Height, Height);
        var rowsLength = channels * frame.Height * Width;
        // Scratch: the horizontally resized planes, then three output rows (colour only).
        var scratch = ArrayPool<float>.Shared.Rent(rowsLength + (channels == 1 ? 0 : 3 * Width));
        try
        {
            var rows = scratch.AsSpan(0, rowsLength);
            Horizontal(frame, format, horizontal, rows, channels);
            if (channels == 1)
            {
                Vertical(rows, vertical, destination);
                if (keepLevels)
                {
                    return true;
                }

                ScaleInPlace(destination);
            }
            else
            {
                VerticalToGray(rows, frame.Height, vertical, scratch.AsSpan(rowsLength, 3 * Width), destination);
            }

            return false;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
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
        if (axis.InSize == axis.OutSize)
        {
            rows[..output.Length].CopyTo(output);
            return;
        }

        for (var y = 0; y < Height; y++)
        {
            VerticalRow(rows, axis, y, output.Slice(y * Width, Width));
        }
    }

    /// <summary>
    /// Vertical pass of the three colour planes fused with the gray conversion, one output row at a time, so no
    /// full-size colour plane is written. The Hugging Face rule "leave an image whose channels are all equal as
    /// it is" needs the whole image: rows are written as R / 255 while every row so far had R = G = B, and
    /// rewritten as gray at the first row that does not (the 8-bit value is recovered exactly from R / 255).
    /// </summary>
    private void VerticalToGray(ReadOnlySpan<float> rows, int sourceHeight, ResampleAxis axis, Span<float> rgb, Span<float> output)
    {
        var planeRows = sourceHeight * Width;
        var r = rgb[..Width];
        var g = rgb.Slice(Width, Width);
        var b = rgb.Slice(2 * Width, Width);
        var allEqual = true;
        for (var y = 0; y < Height; y++)
        {
            if (axis.InSize == axis.OutSize)
            {
                rows.Slice(y * Width, Width).CopyTo(r);
                rows.Slice(planeRows + y * Width, Width).CopyTo(g);
                rows.Slice(2 * planeRows + y * Width, Width).CopyTo(b);
            }
            else
            {
                VerticalRow(rows[..planeRows], axis, y, r);
                VerticalRow(rows.Slice(planeRows, planeRows), axis, y, g);
                VerticalRow(rows.Slice(2 * planeRows, planeRows), axis, y, b);
            }

            var target = output.Slice(y * Width, Width);
            if (allEqual && r.SequenceEqual(g) && g.SequenceEqual(b))
            {
                r.CopyTo(target);
                ScaleInPlace(target);
                continue;
            }

            if (allEqual)
            {
                allEqual = false;
                RegrayEqualRows(output[..(y * Width)]);
            }

            ToGray(r, g, b, target);
        }
    }

    /// <summary>Rows written as v / 255 (all channels equal to v) become the gray value of (v, v, v).</summary>
    private static void RegrayEqualRows(Span<float> rows)
    {
        for (var i = 0; i < rows.Length; i++)
        {
            var v = MathF.Round(rows[i] * 255f);
            rows[i] = v * Scale * 0.2989f + v * Scale * 0.5870f + v * Scale * 0.1140f;
        }
    }

    private void VerticalRow(ReadOnlySpan<float> rows, ResampleAxis axis, int y, Span<float> target)
    {
        var width = Width;
        var half = new Vector<float>(0.5f);
        var max = new Vector<float>(255f);
        var start = axis.Start[y];
        var count = axis.Count[y];
        var weights = axis.WeightsByOutput.AsSpan(y * axis.Taps, count);
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

    private void ScaleRows(in FrameInput frame, Span<float> destination)
    {
        var data = frame.Data.Span;
        var scale = new Vector<float>(Scale);
        for (var y = 0; y < Height; y++)
        {
            var row = data.Slice(y * frame.RowStride, Width);
            var target = destination.Slice(y * Width, Width);
            var x = 0;
            for (; x + Vector<byte>.Count <= Width; x += Vector<byte>.Count)
            {
                Vector.Widen(new Vector<byte>(row[x..]), out var low, out var high);
                Vector.Widen(low, out var a, out var b);
                Vector.Widen(high, out var c, out var d);
                (Vector.ConvertToSingle(a) * scale).CopyTo(target[x..]);
                (Vector.ConvertToSingle(b) * scale).CopyTo(target[(x + Vector<uint>.Count)..]);
                (Vector.ConvertToSingle(c) * scale).CopyTo(target[(x + 2 * Vector<uint>.Count)..]);
                (Vector.ConvertToSingle(d) * scale).CopyTo(target[(x + 3 * Vector<uint>.Count)..]);
            }

            for (; x < Width; x++)
            {
                target[x] = row[x] * Scale;
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
