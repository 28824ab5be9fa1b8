namespace VideoMatch.Cli.Video;

/// <summary>What a video holds, as far as streaming needs it.</summary>
internal sealed record VideoInfo(int Width, int Height, double FramesPerSecond, TimeSpan Duration)
{
    /// <summary>Expected frame count, for progress; 0 when unknown.</summary>
    public long EstimatedFrames => FramesPerSecond > 0 ? (long)Math.Round(Duration.TotalSeconds * FramesPerSecond) : 0;
}

/// <summary>Decodes a video into gray frames of a chosen size. One small seam so the decoder can be replaced.</summary>
internal interface IVideoDecoder
{
    Task<VideoInfo> ProbeAsync(string path, CancellationToken cancellationToken);

    /// <summary>
    /// Calls <paramref name="onFrame"/> with each frame as <paramref name="width"/>×<paramref name="height"/> GRAY8
    /// pixels. The buffer is reused: copy what must outlive the call.
    /// </summary>
    Task DecodeGrayAsync(string path, int width, int height, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> onFrame, CancellationToken cancellationToken);

    /// <summary>As <see cref="DecodeGrayAsync"/>, with RGB24 pixels (3 bytes each, rows packed).</summary>
    Task DecodeRgbAsync(string path, int width, int height, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> onFrame, CancellationToken cancellationToken);
}
