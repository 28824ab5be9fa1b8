namespace VideoMatch.Server.Security;

/// <summary>A token bucket: <see cref="Rate"/> frames per second with a burst of one second's worth. One per stream; not thread-safe.</summary>
internal sealed class FrameRateLimit
{
    private readonly TimeProvider _time;
    private double _tokens;
    private long _last;

    public FrameRateLimit(double rate, TimeProvider time)
    {
        Rate = rate;
        _time = time;
        _tokens = rate;
        _last = time.GetTimestamp();
    }

    /// <summary>Frames per second; 0 for no limit.</summary>
    public double Rate { get; }

    /// <summary>Takes one frame's token; false when the stream is over its rate.</summary>
    public bool TryTake()
    {
        if (Rate <= 0)
        {
            return true;
        }

        var now = _time.GetTimestamp();
        _tokens = Math.Min(Rate, _tokens + _time.GetElapsedTime(_last, now).TotalSeconds * Rate);
        _last = now;
        if (_tokens < 1)
        {
            return false;
        }

        _tokens -= 1;
        return true;
    }
}
