using VideoMatch.Contracts.V1;

namespace VideoMatch.Client;

/// <summary>
/// What a client must hold of a stream to resume it on another server (<see cref="StreamConfig.Resume"/>): the frame
/// the next frame pairs with, the last matched pair's points and track ids, the largest id seen, and the frames sent
/// but not answered yet (to send again, in order). Feed it every frame sent and every response read, in order.
/// </summary>
/// <remarks>Not thread-safe: one per stream, fed by its sender and reader in turn (or under one lock).</remarks>
public sealed class StreamResumePoint
{
    private readonly bool _keyframes;
    private readonly Queue<Frame> _unanswered = new();
    private Frame? _reference;
    private TrackState? _tracks;
    private ulong _largestTrackId;

    /// <param name="config">The stream's settings: keyframe mode decides which frame is the reference.</param>
    public StreamResumePoint(StreamConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        _keyframes = config.Keyframes;
    }

    /// <summary>The sequence number of the last frame answered, or null before the first answer.</summary>
    public ulong? LastAnswered { get; private set; }

    /// <summary>Frames sent and not answered yet, oldest first: what a resumed stream sends again.</summary>
    public IReadOnlyCollection<Frame> Unanswered => _unanswered;

    /// <summary>True once a frame the next one can pair with was answered (before that, a new stream is the same thing).</summary>
    public bool CanResume => _reference is not null;

    /// <summary>A frame was sent.</summary>
    public void Sent(Frame frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        _unanswered.Enqueue(frame);
    }

    /// <summary>A response was read (responses come one per frame, in the order the frames were sent).</summary>
    /// <exception cref="InvalidOperationException">The response answers no frame waiting for one.</exception>
    public void Answered(StreamResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        var sequence = response.Pair?.Sequence1 ?? response.Status?.Sequence
            ?? throw new InvalidOperationException("A stream response with neither a pair nor a status.");
        if (!_unanswered.TryPeek(out var oldest) || oldest.Sequence != sequence)
        {
            throw new InvalidOperationException($"Response for frame {sequence} while frame {(_unanswered.Count > 0 ? oldest!.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none")} waits for its answer.");
        }

        var frame = _unanswered.Dequeue();
        LastAnswered = sequence;
        var usable = response.Pair is not null || response.Status.Code != FrameStatusCode.Invalid;
        // The server's reference: in keyframe mode the first usable frame, then each new keyframe; otherwise every
        // frame it could read (dropped and failed frames too), the latest one.
        if (usable && (!_keyframes || _reference is null || response.Pair?.NewKeyframe == true))
        {
            _reference = frame;
        }

        if (response.Pair?.Matches is { } matches)
        {
            foreach (var id in matches.TrackIds)
            {
                _largestTrackId = Math.Max(_largestTrackId, id);
            }

            if (matches.TrackIds.Count > 0 || matches.Count == 0)
            {
                _tracks = new TrackState { LastPair = response.Pair };
            }
        }
    }

    /// <summary>The resume data for a stream with <paramref name="config"/>'s settings (track ids when it asks for them).</summary>
    /// <exception cref="InvalidOperationException">No frame was answered that the next frame could pair with.</exception>
    public StreamResume Build(StreamConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var reference = _reference ?? throw new InvalidOperationException(
            $"Nothing to resume from: no usable frame was answered (the last answered was {(LastAnswered is { } last ? last.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none")}); start a new stream.");
        var resume = new StreamResume { Reference = reference };
        if (config.TrackIds && _tracks is not null)
        {
            resume.Tracks = new TrackState(_tracks) { NextTrackId = _largestTrackId + 1 };
        }

        return resume;
    }
}
