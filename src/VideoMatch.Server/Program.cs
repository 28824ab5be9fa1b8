using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;
using VideoMatch.Server;
using VideoMatch.Server.Hosting;

if (args.Any(a => a is "--help" or "-h" or "-?"))
{
    Console.Out.Write($"""
        VideoMatch server: keypoint matching between video frames over gRPC.

        Usage: VideoMatch.Server [--urls http://HOST:PORT] [--Section:Setting=value ...]
        Settings come from appsettings.json, environment variables (Section__Setting=value) and the command line.
        Relative paths are resolved against the working directory. Every setting, with its default:

        {SettingsCatalog.Describe()}
        What each one means: the README's Configuration table and docs/SECURITY.md.

        """);
    return 0;
}

// A stop signal at any moment of start-up ends the process cleanly: before the host listens for signals itself (which
// it does once it starts), this handler keeps .NET from killing the process (exit 143) and stops the host once built.
WebApplication? app = null;
using var stopSignal = new CancellationTokenSource();
void Stop(PosixSignalContext context)
{
    context.Cancel = true;
    stopSignal.Cancel();
    try
    {
        Volatile.Read(ref app)?.Lifetime.StopApplication();
    }
    catch (ObjectDisposedException)
    {
        // The host has already stopped.
    }
}

using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
try
{
    var built = ServerApp.Build(args);
    Volatile.Write(ref app, built);
    if (stopSignal.IsCancellationRequested)
    {
        throw new OperationCanceledException(stopSignal.Token);
    }

    built.Run();
    return 0;
}
catch (OperationCanceledException) when (stopSignal.IsCancellationRequested)
{
    // SIGTERM (or Ctrl+C) while the model loaded, checked itself or warmed up: a requested stop, not a failure.
    Console.Error.WriteLine("VideoMatch server stopped before it was ready: a stop signal arrived during start-up.");
    return 0;
}
catch (Exception e) when (e is OptionsValidationException or InvalidOperationException or IOException or UnauthorizedAccessException)
{
    // A bad setting, a model that cannot load, a port that is taken: one clear line, and a failing exit code.
    Console.Error.WriteLine($"VideoMatch server could not start: {Reason(e)}");
    return 1;
}

// Kestrel reports a taken port as an IOException ("Failed to bind to address …") around an AddressInUseException.
// Settings name each problem in a sentence of its own; joined as sentences, not with .NET's "; ".
static string Reason(Exception e) => e switch
{
    IOException { InnerException: Microsoft.AspNetCore.Connections.AddressInUseException } =>
        $"{e.Message.TrimEnd('.')}. Stop what uses it or pick another address with --urls (and Metrics:Url).",
    OptionsValidationException options => string.Join(" ", options.Failures.Select(f => f.TrimEnd() is var t && t.EndsWith('.') ? t : t + ".")),
    _ => e.Message,
};

/// <summary>The server's entry point (public for the functional tests' host).</summary>
public partial class Program;
