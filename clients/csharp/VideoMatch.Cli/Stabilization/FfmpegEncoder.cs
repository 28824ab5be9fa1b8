using System.Diagnostics;
using System.Globalization;

namespace VideoMatch.Cli.Stabilization;

/// <summary>Encodes RGB24 frames written to ffmpeg's standard input; the codec follows the output's extension.</summary>
internal sealed class FfmpegEncoder : IDisposable
{
    private readonly Process _process;
    private readonly Task<string> _errors;
    private readonly string _target;

    public FfmpegEncoder(string target, int width, int height, double framesPerSecond)
    {
        _target = target;
        var start = new ProcessStartInfo("ffmpeg") { RedirectStandardInput = true, RedirectStandardError = true, UseShellExecute = false };
        var rate = framesPerSecond > 0 ? framesPerSecond.ToString("0.###", CultureInfo.InvariantCulture) : "30";
        // yuv420p: what players expect of H.264 (needs even sizes; odd ones lose a row or column).
        foreach (var arg in new[]
        {
            "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", $"{width}x{height}", "-r", rate, "-i", "-",
            "-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2", "-pix_fmt", "yuv420p", target,
        })
        {
            start.ArgumentList.Add(arg);
        }

        try
        {
            _process = Process.Start(start) ?? throw new InvalidOperationException("ffmpeg did not start.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"ffmpeg could not start: {e.Message} (is ffmpeg installed? apt-get install ffmpeg)", e);
        }

        _errors = _process.StandardError.ReadToEndAsync();
    }

    /// <summary>
    /// Checks, before any work, that ffmpeg can write <paramref name="target"/>'s format: its folder exists and one
    /// frame encodes to a scratch file of the same extension.
    /// </summary>
    /// <exception cref="InvalidOperationException">It cannot; the message says why and what to use instead.</exception>
    public static async Task CheckTargetAsync(string target, CancellationToken cancellationToken)
    {
        var extension = Path.GetExtension(target);
        if (extension.Length < 2)
        {
            throw new InvalidOperationException($"'{target}' has no file extension; ffmpeg picks the format from it. Use .mp4 or .mkv (H.264).");
        }

        var folder = Path.GetDirectoryName(Path.GetFullPath(target))!;
        if (!Directory.Exists(folder))
        {
            throw new InvalidOperationException($"The folder of '{target}' ({folder}) does not exist.");
        }

        var scratch = Path.Combine(Path.GetTempPath(), $"videomatch-format-check-{Guid.NewGuid():N}{extension}");
        try
        {
            using var probe = new FfmpegEncoder(scratch, 16, 16, 1);
            await probe.WriteAsync(new byte[16 * 16 * 3], cancellationToken).ConfigureAwait(false);
            await probe.FinishAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException($"ffmpeg cannot write '{extension}' files, so '{target}' would fail after all the matching; use .mp4 or .mkv. ({e.Message})", e);
        }
        finally
        {
            File.Delete(scratch);
        }
    }

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> rgb, CancellationToken cancellationToken)
    {
        try
        {
            await _process.StandardInput.BaseStream.WriteAsync(rgb, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"ffmpeg stopped taking frames for '{_target}': {(await _errors.ConfigureAwait(false)).Trim()}", e);
        }
    }

    /// <exception cref="InvalidOperationException">ffmpeg failed; the message carries its error output.</exception>
    public async Task FinishAsync(CancellationToken cancellationToken)
    {
        _process.StandardInput.Close();
        await _process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (_process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ffmpeg could not write '{_target}': {(await _errors.ConfigureAwait(false)).Trim()}");
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        _process.Dispose();
    }
}
