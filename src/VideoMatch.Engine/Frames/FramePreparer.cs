using System.Buffers;
using System.Diagnostics;
using VideoMatch.Engine.Preprocessing;

namespace VideoMatch.Engine.Frames;

/// <summary>Validates, decodes and preprocesses client frames into <see cref="PreparedFrame"/>s for one model input size.</summary>
public sealed class FramePreparer
{
    private readonly FramePreprocessor _preprocessor;

    public FramePreparer(int width, int height, int maxDimension)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxDimension);
        _preprocessor = new FramePreprocessor(width, height);
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
            _preprocessor.Run(raw, pixels);
        }
        catch
        {
            ArrayPool<float>.Shared.Return(pixels);
            throw;
        }

        return new PreparedFrame(pixels, raw.Width, raw.Height, sequence, timestampUs, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }
}
