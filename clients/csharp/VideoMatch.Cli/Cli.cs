using System.CommandLine;
using Grpc.Core;
using Spectre.Console;
using VideoMatch.Cli.Commands;
using VideoMatch.Cli.Video;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Cli;

/// <summary>What every command gets: where to write, and how to reach the server.</summary>
internal sealed class CliContext(TextWriter output, TextWriter error, IVideoDecoder decoder)
{
    public TextWriter Output { get; } = output;

    public TextWriter Error { get; } = error;

    /// <summary>Width of a table written to a file or pipe: wide enough that no row wraps mid-phrase.</summary>
    private const int UnwrappedWidth = 400;

    private IAnsiConsole? _tables;

    /// <summary>Human-facing rendering (tables, progress) goes to standard error, keeping standard output for data.</summary>
    public IAnsiConsole Console { get; } = Create(error, ReferenceEquals(error, System.Console.Error) && !System.Console.IsErrorRedirected);

    /// <summary>Tables that are the command's output (<c>info</c>, <c>bench</c>), on standard output, without colour.</summary>
    public IAnsiConsole Tables => _tables ??= Create(Output, terminal: false);

    private static IAnsiConsole Create(TextWriter writer, bool terminal)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Interactive = terminal ? InteractionSupport.Yes : InteractionSupport.No,
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
        });
        if (!terminal && !(ReferenceEquals(writer, System.Console.Out) && !System.Console.IsOutputRedirected))
        {
            // A file or pipe has no width: Spectre's 80-column guess would wrap rows mid-phrase.
            console.Profile.Width = UnwrappedWidth;
        }

        return console;
    }

    public IVideoDecoder Decoder { get; } = decoder;

    public bool Interactive => Console.Profile.Capabilities.Interactive;
}

/// <summary>The <c>videomatch</c> command line.</summary>
internal static class Cli
{
    public static readonly Option<string> Server = new("--server", "-s")
    {
        Description = "Server address (http:// plaintext, https:// TLS), or several separated by commas (calls balanced round-robin), or a dns:/// name with an address per server. Default: $VIDEOMATCH_SERVER or http://127.0.0.1:50051.",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("VIDEOMATCH_SERVER") is { Length: > 0 } url ? url : "http://127.0.0.1:50051",
    };

    public static readonly Option<string?> ApiKey = new("--api-key")
    {
        Description = "Bearer token for servers that require one. Default: $VIDEOMATCH_API_KEY.",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("VIDEOMATCH_API_KEY"),
    };

    public static readonly Option<string?> Model = new("--model", "-m")
    {
        Description = "Which of the server's models to use (videomatch info lists them). Default: the server's default model.",
    };

    public static readonly Option<bool> Resume = new("--resume")
    {
        Description = "When the server stops (a rolling update, scale-in), go on on another one (several --server addresses or a dns:/// name): the stream resumes where it was, frames not yet answered are sent again, and each move is reported.",
    };

    /// <summary>
    /// How a command streams: resuming on another server when <see cref="Resume"/> is given (each move reported on
    /// standard error), else one server for the whole stream.
    /// </summary>
    public static Streamer Streamer(ParseResult parse, CliContext context)
    {
        if (!parse.GetValue(Resume))
        {
            return static (client, frames, config, cancellationToken) => client.StreamAsync(frames, config, cancellationToken);
        }

        var options = new StreamResumeOptions
        {
            Moved = move => context.Error.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"The server stopped ({move.Cause.StatusCode}); the stream went on on another one after frame {(move.LastAnswered is { } last ? last.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none")}, {move.Resent} frames sent again.")),
        };
        return (client, frames, config, cancellationToken) => client.StreamAsync(frames, config, options, cancellationToken);
    }

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, IVideoDecoder decoder, CancellationToken cancellationToken = default)
    {
        var context = new CliContext(output, error, decoder);
        Command[] calling = [MatchCommand.Create(context), StreamCommand.Create(context), BenchCommand.Create(context), InfoCommand.Create(context),
            Stabilization.StabilizeCommand.Create(context)];
        var root = new RootCommand("VideoMatch: keypoint matching between images and video frames, served over gRPC.");
        // --server, --api-key and --model on the commands that call a server only (verify runs the model here).
        foreach (var command in calling)
        {
            command.Add(Server);
            command.Add(ApiKey);
            command.Add(Model);
            root.Add(command);
        }

        root.Add(VerifyCommand.Create(context));
        var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        return await root.Parse(args).InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Wraps a command's action: expected failures become one line on standard error and exit code 1.</summary>
    public static Func<ParseResult, CancellationToken, Task<int>> Guard(CliContext context, Func<ParseResult, CancellationToken, Task<int>> action) =>
        async (parse, cancellationToken) =>
        {
            try
            {
                return await action(parse, cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e)
            {
                await context.Error.WriteLineAsync($"videomatch: {Describe(e, parse.GetValue(Server)!)}").ConfigureAwait(false);
                return 1;
            }
            catch (ArgumentException e)
            {
                // The message without .NET's " (Parameter 'x')" suffix: the user never saw the parameter.
                var message = e.ParamName is { } name ? e.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : e.Message;
                await context.Error.WriteLineAsync($"videomatch: {message}").ConfigureAwait(false);
                return 1;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException or UnauthorizedAccessException or FormatException)
            {
                await context.Error.WriteLineAsync($"videomatch: {e.Message}").ConfigureAwait(false);
                return 1;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                await context.Error.WriteLineAsync("videomatch: cancelled").ConfigureAwait(false);
                return 130;
            }
#pragma warning disable CA1031 // The last line of defence: no library exception reaches the user as a crash.
            catch (Exception e)
#pragma warning restore CA1031
            {
                await context.Error.WriteLineAsync($"videomatch: unexpected {e.GetType().Name}: {e.Message} (please report this with the command line)").ConfigureAwait(false);
                return 2;
            }
        };

    /// <summary>
    /// What a failed call means for the user. Transport failures surface as INTERNAL or UNAVAILABLE with .NET's
    /// text; the common ones (wrong port, wrong scheme, server down) get a sentence that says what to change.
    /// </summary>
    internal static string Describe(RpcException e, string server)
    {
        var detail = e.Status.Detail.TrimEnd('.', ' ');
        var debug = e.Status.DebugException?.ToString() ?? "";
        if (detail.Contains("HTTP_1_1_REQUIRED", StringComparison.Ordinal) || debug.Contains("HTTP_1_1_REQUIRED", StringComparison.Ordinal))
        {
            return $"{server} speaks HTTP/1.1 only, so it is not a VideoMatch gRPC port; it may be the metrics port (default 9464). The gRPC port is 50051 unless the server was started with --urls.";
        }

        if (server.StartsWith("https://", StringComparison.OrdinalIgnoreCase) &&
            (detail.Contains("SSL connection could not be established", StringComparison.Ordinal) || debug.Contains("AuthenticationException", StringComparison.Ordinal)))
        {
            var plaintext = debug.Contains("frame size", StringComparison.Ordinal) || debug.Contains("corrupted frame", StringComparison.Ordinal);
            return plaintext
                ? $"the TLS handshake with {server} failed: the server answers in plaintext. Use http://{server["https://".Length..]} (or configure Security:CertificatePath on the server)."
                : $"the TLS handshake with {server} failed: {Innermost(e.Status.DebugException) ?? detail}";
        }

        if (e.StatusCode == StatusCode.Unavailable && AnsweredByServer(e))
        {
            // The server is running and said why it serves nothing now: loading, warming up, stopping, failed self-check.
            return $"the server at {server} is running but not serving: {detail}";
        }

        return e.StatusCode switch
        {
            StatusCode.Unavailable => $"could not reach the server at {server}: {detail}. Is it running? (dotnet run --project src/VideoMatch.Server)",
            StatusCode.Unauthenticated => $"the server at {server} refused the call: {detail}. Pass --api-key KEY or set VIDEOMATCH_API_KEY.",
            _ => $"the server answered {e.StatusCode}: {detail}",
        };
    }

    /// <summary>
    /// True when the status came from the server (its handler or its health service), false when the call never got
    /// there: a transport failure carries the exception that broke the connection.
    /// </summary>
    internal static bool AnsweredByServer(RpcException e) => e.Status.DebugException is null;

    private static string? Innermost(Exception? e)
    {
        while (e?.InnerException is not null)
        {
            e = e.InnerException;
        }

        return e?.Message.TrimEnd('.');
    }

    public static VideoMatchClient Connect(ParseResult parse)
    {
        var options = new VideoMatchClientOptions { ApiKey = parse.GetValue(ApiKey), Model = parse.GetValue(Model) };
        var addresses = parse.GetValue(Server)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var address in addresses)
        {
            var dns = addresses.Length == 1 && address.StartsWith("dns:///", StringComparison.Ordinal);
            if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || !(dns || uri.Scheme is "http" or "https"))
            {
                throw new ArgumentException($"--server '{address}' is not an http:// or https:// address (for example http://127.0.0.1:50051), nor one dns:/// name.");
            }

            if (addresses.Length == 1)
            {
                options.Address = uri;
            }
            else
            {
                options.Addresses.Add(uri);
            }
        }

        return new VideoMatchClient(options);
    }

    /// <summary>Opens a file for writing, or standard output for "-".</summary>
    public static TextWriter OpenOutput(CliContext context, string target) =>
        target == "-" ? context.Output : new StreamWriter(File.Create(target)) { AutoFlush = false };
}
