using System.Buffers;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Engine.Frames;

/// <summary>
/// A frame resized to the model's input: a gray plane in a pooled buffer, held in the model's input type (bytes
/// 0..255 for a uint8 graph, floats in [0, 1] for a float one, so neither is converted twice), plus what the response
/// needs (original size, sequence, timestamp). Reference-counted: a stream frame belongs to two pairs, (t−1, t) and
/// (t, t+1), and is preprocessed once for both; the buffer goes back to the pool when the last holder releases it.
/// </summary>
public sealed class PreparedFrame
{
    // A float[] or a byte[] from the shared pool, as ElementType says; null once released.
    private Array? _pixels;
    private IFrameFeatures? _features;
    private int _references = 1;

    internal PreparedFrame(Array pixels, FrameMapping mapping, ulong sequence, long timestampUs, double preprocessMs)
    {
        ElementType = pixels switch
        {
            float[] => InputElementType.Float32,
            byte[] => InputElementType.UInt8,
            _ => throw new ArgumentException($"A frame's plane is float[] or byte[], not {pixels.GetType().Name}.", nameof(pixels)),
        };
        _pixels = pixels;
        Mapping = mapping;
        Sequence = sequence;
        TimestampUs = timestampUs;
        PreprocessMs = preprocessMs;
    }

    /// <summary>Where the frame sits in the model input, and how model points map back to its pixels.</summary>
    public FrameMapping Mapping { get; }

    public int OriginalWidth => Mapping.OriginalWidth;

    public int OriginalHeight => Mapping.OriginalHeight;

    public ulong Sequence { get; }

    public long TimestampUs { get; }

    /// <summary>True when the frame was turned 90° clockwise into the model input (see <see cref="FramePreparer.Prepare"/>).</summary>
    public bool Rotated => Mapping.Rotated;

    /// <summary>Decode and resize time.</summary>
    public double PreprocessMs { get; }

    /// <summary>The type the plane is held in: the input type of the model it was prepared for.</summary>
    public InputElementType ElementType { get; }

    /// <summary>The gray plane in [0, 1] of a frame prepared for a float graph; valid while the caller holds a reference.</summary>
    public ReadOnlySpan<float> Floats(int length) => Plane<float>().AsSpan(0, length);

    /// <summary>The gray plane as bytes 0..255 of a frame prepared for a uint8 graph; valid while the caller holds a reference.</summary>
    public ReadOnlySpan<byte> Bytes(int length) => Plane<byte>().AsSpan(0, length);

    private T[] Plane<T>() => Volatile.Read(ref _pixels) switch
    {
        T[] plane => plane,
        null => throw new ObjectDisposedException(nameof(PreparedFrame), "A released frame was read."),
        _ => throw new InvalidOperationException($"This frame was prepared for a {ElementType.ToString().ToLowerInvariant()} input, and was read as {typeof(T).Name}: prepare frames with the matcher's FrameType."),
    };

    /// <summary>
    /// What a model computed from this frame alone (a detector's keypoints and descriptors, a split model's slot in its
    /// frame bank), kept for the frame's next pairs. Set and read on the batcher's thread, but taken away from others: a
    /// frame bank evicting the slot (<see cref="TryDetachFeatures"/>) and the last <see cref="Release"/>, on whichever
    /// thread lets go, so every access is atomic. Dropped with the pixels, and disposed then (a bank slot goes back to
    /// its bank).
    /// </summary>
    internal IFrameFeatures? Features
    {
        get => Volatile.Read(ref _features);
        set => Volatile.Write(ref _features, value);
    }

    /// <summary>Sets <see cref="Features"/> and returns what it held.</summary>
    internal IFrameFeatures? ExchangeFeatures(IFrameFeatures? features) => Interlocked.Exchange(ref _features, features);

    /// <summary>Drops <paramref name="features"/> if the frame still holds them (a frame bank evicting them); true if it did.</summary>
    internal bool TryDetachFeatures(IFrameFeatures features) => ReferenceEquals(Interlocked.CompareExchange(ref _features, null, features), features);

    /// <summary>True once the last reference was released and the pixels went back to the pool.</summary>
    public bool IsReleased => Volatile.Read(ref _pixels) is null;

    /// <summary>Takes one more reference; pair it with <see cref="Release"/>.</summary>
    public PreparedFrame AddReference()
    {
        if (Interlocked.Increment(ref _references) <= 1)
        {
            throw new ObjectDisposedException(nameof(PreparedFrame), "A released frame was referenced again.");
        }

        return this;
    }

    public void Release()
    {
        var left = Interlocked.Decrement(ref _references);
        if (left == 0)
        {
            Interlocked.Exchange(ref _features, null)?.Dispose();
            switch (Interlocked.Exchange(ref _pixels, null))
            {
                case float[] floats:
                    ArrayPool<float>.Shared.Return(floats);
                    break;
                case byte[] bytes:
                    ArrayPool<byte>.Shared.Return(bytes);
                    break;
            }
        }
        else if (left < 0)
        {
            throw new InvalidOperationException("A frame was released more often than referenced.");
        }
    }
}

/// <summary>
/// What a model computed from one frame alone and keeps with it for the frame's next pairs: a split model's slot in
/// its frame bank, a keypoint extractor's points and descriptors. Disposed when the frame lets go of it.
/// </summary>
internal interface IFrameFeatures : IDisposable
{
}
