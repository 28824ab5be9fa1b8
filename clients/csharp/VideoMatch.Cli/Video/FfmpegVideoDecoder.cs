using FFMpegCore;
using FFMpegCore.Pipes;

namespace VideoMatch.Cli.Video;

/// <summary>Decodes with Debian's ffmpeg through FFMpegCore: raw gray frames over a pipe, scaled by ffmpeg.</summary>
internal sealed class FfmpegVideoDecoder : IVideoDecoder
{
    public async Task<VideoInfo> ProbeAsync(string path, CancellationToken cancellationToken)
    {
        IMediaAnalysis analysis;
        try
        {
            analysis = await FFProbe.AnalyseAsync(path, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or FFMpegCore.Exceptions.FFMpegException)
        {
            throw new InvalidOperationException($"ffprobe could not read '{path}': {e.Message} (is ffmpeg installed? apt-get install ffmpeg)", e);
        }

        var video = analysis.PrimaryVideoStream ?? throw new InvalidOperationException($"'{path}' has no video stream.");
        return new VideoInfo(video.Width ?? 0, video.Height ?? 0, video.AverageFrameRate, analysis.Duration);
    }

    public Task DecodeGrayAsync(string path, int width, int height, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> onFrame, CancellationToken cancellationToken) =>
        DecodeAsync(path, width, height, "gray", 1, onFrame, cancellationToken);

    public Task DecodeRgbAsync(string path, int width, int height, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> onFrame, CancellationToken cancellationToken) =>
        DecodeAsync(path, width, height, "rgb24", 3, onFrame, cancellationToken);

    private static async Task DecodeAsync(string path, int width, int height, string pixelFormat, int bytesPerPixel, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> onFrame, CancellationToken cancellationToken)
    {
        var sink = new StreamPipeSink(async (output, token) =>
        {
            var frame = new byte[width * height * bytesPerPixel];
            while (true)
            {
                var filled = 0;
                while (filled < frame.Length)
                {
                    var read = await output.ReadAsync(frame.AsMemory(filled), token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        return;
                    }

                    filled += read;
                }

                await onFrame(frame, token).ConfigureAwait(false);
            }
        });

        // bilinear in swscale widens its filter when shrinking, like the antialiased resize of the HF processor.
        await FFMpegArguments.FromFileInput(path)
            .OutputToPipe(sink, options => options
                .WithCustomArgument($"-vf scale={width}:{height}:flags=bilinear -pix_fmt {pixelFormat} -f rawvideo"))
            .CancellableThrough(cancellationToken)
            .ProcessAsynchronously(throwOnError: true, cancellationToken: cancellationToken)
            .ConfigureAwait(false);
    }
}
