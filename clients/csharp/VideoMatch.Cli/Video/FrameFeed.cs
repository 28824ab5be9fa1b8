using System.Threading.Channels;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Cli.Video;

/// <summary>Feeds a stream: decodes a video into GRAY8 frames numbered from 0, with timestamps from its frame rate.</summary>
internal static class FrameFeed
{
    /// <summary>Writes every frame to <paramref name="frames"/>, then completes it (with the error, if decoding failed).</summary>
    /// <param name="keep">Called with each frame's number and pixels (a copy the caller may keep); null: not called.</param>
    public static async Task DecodeAsync(IVideoDecoder decoder, string path, int width, int height, double framesPerSecond,
        ChannelWriter<Frame> frames, Action<ulong, byte[]>? keep, CancellationToken cancellationToken)
    {
        ulong index = 0;
        try
        {
            await decoder.DecodeGrayAsync(path, width, height, async (pixels, token) =>
            {
                var copy = pixels.ToArray();
                keep?.Invoke(index, copy);
                var timestamp = framesPerSecond > 0 ? (long)(index * 1_000_000 / framesPerSecond) : 0;
                await frames.WriteAsync(new Frame { Sequence = index, TimestampUs = timestamp, Image = Images.RawNoCopy(PixelFormat.Gray8, width, height, copy) }, token).ConfigureAwait(false);
                index++;
            }, cancellationToken).ConfigureAwait(false);
            frames.TryComplete();
        }
        catch (Exception e)
        {
            frames.TryComplete(e);
            throw;
        }
    }
}
