using System.Buffers;
using System.Diagnostics;
using VideoMatch.Engine.Preprocessing;

namespace VideoMatch.Engine.Frames;

/// <summary>Validates, decodes and preprocesses client frames into <see cref="PreparedFrame"/>s for one model input size.</summary>
public sealed class FramePreparer
{
    private readonly FramePreprocessor _preprocessor;
    private readonly FramePreprocessor? _turned;

    /// <param name="rotateToFit">
    /// Rotate frames whose orientation differs from the input's by 90° clockwise (see
    /// <see cref="FrameGeometry.IsRotated"/>) before they are resized.
    /// </param>
    public FramePreparer(int width, int height, int maxDimension, bool rotateToFit = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxDimension);
        _preprocessor = new FramePreprocessor(width, height);
        _turned = rotateToFit && width != height ? new FramePreprocessor(height, width) : null;
        MaxDimension = maxDimension;
    }

    /// <summary>Largest width or height accepted.</summary>
    public int MaxDimension { get; }

    public int Width => _preprocessor.Width;

    public int Height => _preprocessor.Height;

    /// <exception cref="FrameRejectedException">The frame cannot be used; the message says why.</exception>
    public PreparedFrame Prepare(in FrameInput input, ulong sequence = 0, long timestampUs = 0)
    {
        var started = Stopwatch.GetTimestamp();
        if (input.Encoding is { } encoding)
        {
            using var decoded = ImageDecoder.Decode(encoding, input.Data, MaxDimension);
            return PrepareRaw(decoded.Frame, sequence, timestampUs, started);
        }

        PixelFormats.Validate(input, MaxDimension);
        return PrepareRaw(input, sequence, timestampUs, started);
    }

    private PreparedFrame PrepareRaw(in FrameInput raw, ulong sequence, long timestampUs, long started)
    {
        var pixels = ArrayPool<float>.Shared.Rent(Width * Height);
        try
        {
            if (_turned is not null && FrameGeometry.IsRotated(Width, Height, raw.Width, raw.Height))
            {
                RunRotated(raw, pixels);
            }
            else
            {
                _preprocessor.Run(raw, pixels);
            }
        }
        catch
        {
            ArrayPool<float>.Shared.Return(pixels);
            throw;
        }

        return new PreparedFrame(pixels, raw.Width, raw.Height, sequence, timestampUs, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>Resizes to the turned size (Height × Width), then rotates 90° clockwise into the input.</summary>
    private void RunRotated(in FrameInput raw, float[] pixels)
    {
        var turnedWidth = Height;
        var turnedHeight = Width;
        var scratch = ArrayPool<float>.Shared.Rent(Width * Height);
        try
        {
            _turned!.Run(raw, scratch);
            // Input (x, y) shows turned (y, turnedHeight − 1 − x).
            for (var y = 0; y < Height; y++)
            {
                var row = pixels.AsSpan(y * Width, Width);
                for (var x = 0; x < Width; x++)
                {
                    row[x] = scratch[(turnedHeight - 1 - x) * turnedWidth + y];
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }
    }
}
