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

try
{
    var app = ServerApp.Build(args);
    app.Run();
    return 0;
}
catch (Exception e) when (e is OptionsValidationException or InvalidOperationException or IOException or UnauthorizedAccessException)
{
    // A bad setting, a model that cannot load, a port that is taken: one clear line, and a failing exit code.
    Console.Error.WriteLine($"VideoMatch server could not start: {Reason(e)}");
    return 1;
}

// Kestrel reports a taken port as "Failed to bind to address …: address already in use."
static string Reason(Exception e) =>
    e is IOException && e.Message.StartsWith("Failed to bind", StringComparison.Ordinal)
        ? $"{e.Message.TrimEnd('.')}. Stop what uses it or pick another address with --urls (and Metrics:Url)."
        : e.Message;

/// <summary>The server's entry point (public for the functional tests' host).</summary>
public partial class Program;
