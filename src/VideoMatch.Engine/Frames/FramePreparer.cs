using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using VideoMatch.Engine.Inference;
using VideoMatch.Engine.Preprocessing;

namespace VideoMatch.Engine.Frames;

/// <summary>Validates, decodes and preprocesses client frames into <see cref="PreparedFrame"/>s for one model input size.</summary>
public sealed class FramePreparer
{
    private readonly bool _rotateToFit;
    // Resizers per content size (letterboxed or turned frames); streams keep one size, so few are live.
    private readonly ConcurrentDictionary<(int, int), FramePreprocessor> _resizers = new();

    /// <param name="rotateToFit">
    /// Rotate frames whose orientation differs from the input's by 90° clockwise (see
    /// <see cref="FrameGeometry.IsRotated"/>) before they are resized.
    /// </param>
    /// <param name="maxPixels">Largest width × height accepted, raw or decoded.</param>
    /// <param name="decodeBudget">Bytes all decodes through <see cref="PrepareAsync"/> may hold at once; null: no bound.</param>
    /// <param name="elementType">The type the model takes its pixels in (<see cref="IPairMatcher.FrameType"/>): frames are prepared straight into it.</param>
    public FramePreparer(int width, int height, int maxDimension, bool rotateToFit = false, long maxPixels = long.MaxValue, DecodeBudget? decodeBudget = null,
        InputElementType elementType = InputElementType.Float32)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxDimension);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPixels);
        Width = width;
        Height = height;
        _rotateToFit = rotateToFit && width != height;
        MaxDimension = maxDimension;
        MaxPixels = maxPixels;
        DecodeBudget = decodeBudget;
        ElementType = elementType;
    }

    /// <summary>The type of the frames' planes.</summary>
    public InputElementType ElementType { get; }

    /// <summary>Largest width or height accepted.</summary>
    public int MaxDimension { get; }

    /// <summary>Largest width × height accepted.</summary>
    public long MaxPixels { get; }

    /// <summary>What decodes may hold at once; null when unbounded.</summary>
    public DecodeBudget? DecodeBudget { get; }

    public int Width { get; }

    public int Height { get; }

    /// <param name="rotate">
    /// Where the model rotates to fit: null turns the frame when its own orientation differs from the input's;
    /// true or false imposes the decision, so both images of a pair (and all frames of a stream) reach the model
    /// turned alike, whatever their shapes. Ignored by models that do not rotate.
    /// </param>
    /// <param name="letterbox">
    /// Keep the frame's aspect ratio: resize it into the largest top-left rectangle of its shape and repeat its edge
    /// pixels over the rest, instead of stretching it over the whole input (the Hugging Face processor's way).
    /// </param>
    /// <exception cref="FrameRejectedException">The frame cannot be used; the message says why.</exception>
    public PreparedFrame Prepare(in FrameInput input, ulong sequence = 0, long timestampUs = 0, bool? rotate = null, bool letterbox = false)
    {
        var started = Stopwatch.GetTimestamp();
        if (input.Encoding is { } encoding)
        {
            using var decoded = ImageDecoder.Decode(encoding, input.Data, MaxDimension, MaxPixels);
            return PrepareRaw(decoded.Frame, sequence, timestampUs, started, rotate, letterbox);
        }

        PixelFormats.Validate(input, MaxDimension);
        if ((long)input.Width * input.Height > MaxPixels)
        {
            throw new FrameRejectedException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"Image size {input.Width}×{input.Height} ({(long)input.Width * input.Height} pixels) exceeds the server's limit of {MaxPixels} pixels per image (Limits:MaxImagePixels); downscale the frame first."));
        }

        return PrepareRaw(input, sequence, timestampUs, started, rotate, letterbox);
    }

    /// <summary>
    /// Why encoded frames of some kind cannot be decoded on this machine (TurboJPEG, for JPEG, is not installed), or
    /// null. Such frames are answered INVALID with this reason; raw and PNG frames are unaffected.
    /// </summary>
    public static string? DecoderProblem => TurboJpeg.Unavailable;

    /// <summary>
    /// As <see cref="Prepare"/>, holding the decode's buffer size from <see cref="DecodeBudget"/> while it runs (an
    /// encoded image waits there while the budget is spent; raw frames need none).
    /// </summary>
    /// <exception cref="FrameRejectedException">The frame cannot be used; the message says why.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired while waiting for the budget.</exception>
    public async ValueTask<PreparedFrame> PrepareAsync(FrameInput input, ulong sequence, long timestampUs, bool? rotate, bool letterbox, CancellationToken cancellationToken)
    {
        if (DecodeBudget is null || input.Encoding is null)
        {
            return Prepare(input, sequence, timestampUs, rotate, letterbox);
        }

        using var lease = await DecodeBudget.ReserveAsync(ImageDecoder.DecodedBytes(input.Data), cancellationToken).ConfigureAwait(false);
        return Prepare(input, sequence, timestampUs, rotate, letterbox);
    }

    private PreparedFrame PrepareRaw(in FrameInput raw, ulong sequence, long timestampUs, long started, bool? rotate, bool letterbox)
    {
        var rotated = _rotateToFit && (rotate ?? FrameGeometry.IsRotated(Width, Height, raw.Width, raw.Height));
        var mapping = FrameMapping.Create(Width, Height, raw.Width, raw.Height, rotated, letterbox);
        Array pixels = ElementType == InputElementType.UInt8
            ? Prepare<byte>(raw, mapping, static (resizer, in frame, plane) => resizer.Run(frame, plane))
            : Prepare<float>(raw, mapping, static (resizer, in frame, plane) => resizer.Run(frame, plane));
        return new PreparedFrame(pixels, mapping, sequence, timestampUs, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private delegate void ResizeInto<T>(FramePreprocessor resizer, in FrameInput frame, Span<T> plane);

    /// <summary>
    /// The frame's plane in a pooled buffer: resized over the whole input, or resized to the content size and placed
    /// into the input, turned 90° clockwise when the mapping says so, edge pixels repeated where the content does not reach.
    /// </summary>
    private T[] Prepare<T>(in FrameInput raw, FrameMapping mapping, ResizeInto<T> resize)
    {
        var pixels = ArrayPool<T>.Shared.Rent(Width * Height);
        try
        {
            if (!mapping.Rotated && !mapping.Letterboxed)
            {
                resize(Resizer(Width, Height), raw, pixels);
                return pixels;
            }

            var (contentWidth, contentHeight) = (mapping.ContentWidth, mapping.ContentHeight);
            var content = ArrayPool<T>.Shared.Rent(contentWidth * contentHeight);
            try
            {
                resize(Resizer(contentWidth, contentHeight), raw, content);
                for (var y = 0; y < Height; y++)
                {
                    var row = pixels.AsSpan(y * Width, Width);
                    for (var x = 0; x < Width; x++)
                    {
                        // Input (x, y) shows content (u, v); see FrameMapping.
                        var (u, v) = mapping.Rotated ? (y, Width - 1 - x) : (x, y);
                        row[x] = content[Math.Min(v, contentHeight - 1) * contentWidth + Math.Min(u, contentWidth - 1)];
                    }
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(content);
            }

            return pixels;
        }
        catch
        {
            ArrayPool<T>.Shared.Return(pixels);
            throw;
        }
    }

    private FramePreprocessor Resizer(int width, int height)
    {
        if (_resizers.TryGetValue((width, height), out var resizer))
        {
            return resizer;
        }

        // A client cycling frame sizes must not grow memory forever.
        if (_resizers.Count > 64)
        {
            _resizers.Clear();
        }

        return _resizers.GetOrAdd((width, height), static key => new FramePreprocessor(key.Item1, key.Item2));
    }
}
