using VideoMatch.Contracts.V1;

namespace VideoMatch.Cli.Commands;

/// <summary>
/// The sent pixels of the frames a later pair may still draw: the stream's current reference (the frame before, or
/// the keyframe) and the frames in flight. Responses come in frame order, so once frame t is answered every frame
/// up to t is settled and only the reference among them stays.
/// </summary>
/// <remarks>
/// The server's rules, repeated: in consecutive mode every frame it accepted (first, matched, dropped, failed) is
/// the next frame's reference, an invalid one is skipped; in keyframe mode the reference changes only at the first
/// frame and at a pair marked <c>new_keyframe</c>. Thread-safe: frames are kept on the sending task and settled on
/// the reading one.
/// </remarks>
internal sealed class PairPixels(bool keyframes)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, byte[]> _pixels = [];
    private ulong? _reference;

    /// <summary>Frames whose pixels are held now.</summary>
    public int Held
    {
        get
        {
            lock (_lock)
            {
                return _pixels.Count;
            }
        }
    }

    /// <summary>Holds a frame's pixels until it is settled (or stays the reference).</summary>
    public void Keep(ulong sequence, byte[] pixels)
    {
        lock (_lock)
        {
            _pixels[sequence] = pixels;
        }
    }

    /// <summary>The pair's two frames' pixels (null where not held), then lets go of what no later pair uses.</summary>
    public (byte[]? Pixels0, byte[]? Pixels1) Settle(PairMatches pair)
    {
        ArgumentNullException.ThrowIfNull(pair);
        lock (_lock)
        {
            var pixels = (_pixels.GetValueOrDefault(pair.Sequence0), _pixels.GetValueOrDefault(pair.Sequence1));
            SettleUpTo(pair.Sequence1, !keyframes || pair.NewKeyframe ? pair.Sequence1 : pair.Sequence0);
            return pixels;
        }
    }

    /// <summary>A frame answered without matches: lets go of what no later pair uses.</summary>
    public void Settle(FrameStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        lock (_lock)
        {
            var becomesReference = status.Code == FrameStatusCode.FirstFrame || (!keyframes && status.Code != FrameStatusCode.Invalid);
            SettleUpTo(status.Sequence, becomesReference ? status.Sequence : _reference);
        }
    }

    private void SettleUpTo(ulong sequence, ulong? reference)
    {
        _reference = reference;
        List<ulong>? settled = null;
        foreach (var held in _pixels.Keys)
        {
            if (held <= sequence && held != reference)
            {
                (settled ??= []).Add(held);
            }
        }

        foreach (var held in settled ?? [])
        {
            _pixels.Remove(held);
        }
    }
}
