using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace VideoMatch.Tests;

/// <summary>The built server as a child process on a loopback port, with its output kept.</summary>
public sealed partial class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ITestOutputHelper _output;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly System.Text.StringBuilder _log = new();

    private ServerProcess(Process process, ITestOutputHelper output) => (_process, _output) = (process, output);

    public string Address { get; private set; } = "";

    public int Port => new Uri(Address).Port;

    public bool HasExited => _process.HasExited;

    /// <summary>Resident memory now, in bytes.</summary>
    public long Resident
    {
        get
        {
            _process.Refresh();
            return _process.WorkingSet64;
        }
    }

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public static async Task<ServerProcess> StartAsync(ITestOutputHelper output, params string[] settings)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory };
        foreach (var argument in new[] { Path.Combine(AppContext.BaseDirectory, "VideoMatch.Server.dll"), "--urls", "http://127.0.0.1:0", "--Metrics:Url=",
            "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information" }.Concat(settings))
        {
            start.ArgumentList.Add(argument);
        }

        var server = new ServerProcess(Process.Start(start)!, output);
        void Line(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (server._log)
            {
                server._log.Append(System.Globalization.CultureInfo.InvariantCulture, $"[{server._clock.Elapsed.TotalSeconds,6:F2}] ").AppendLine(line);
            }

            // The gRPC address is listed first; the metrics port, when a test turns it on, after it.
            if (server.Address.Length == 0 && Listening().Match(line) is { Success: true } match)
            {
                server.Address = match.Groups[1].Value;
            }

        }

        server._process.OutputDataReceived += (_, e) => Line(e.Data);
        server._process.ErrorDataReceived += (_, e) => Line(e.Data);
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();
        // Ready means what a probe sees: grpc.health.v1 says SERVING (the address comes from Kestrel's start-up line).
        await Limits.UntilAsync(() => server._process.HasExited || server.Address.Length > 0, "the server to listen");
        using var probe = server._process.HasExited ? null : Grpc.Net.Client.GrpcChannel.ForAddress(server.Address);
        var health = probe is null ? null : new Grpc.Health.V1.Health.HealthClient(probe);
        var stopwatch = Stopwatch.StartNew();
        while (health is not null && !server._process.HasExited && !await IsServingAsync(health))
        {
            if (stopwatch.Elapsed > Limits.Call)
            {
                throw new TimeoutException($"The server at {server.Address} did not report SERVING within {Limits.Call.TotalSeconds:0} s (Limits.Call).");
            }

            await Task.Delay(50);
        }

        if (server._process.HasExited)
        {
            throw new InvalidOperationException($"The server exited before it was ready (exit code {server._process.ExitCode}).");
        }

        return server;
    }

    private static async Task<bool> IsServingAsync(Grpc.Health.V1.Health.HealthClient health)
    {
        try
        {
            var answer = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(5));
            return answer.Status == Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving;
        }
        catch (Grpc.Core.RpcException)
        {
            return false;
        }
    }

    /// <summary>SIGTERM, as Kubernetes and systemd stop a process.</summary>
    public void Terminate()
    {
        lock (_log)
        {
            _log.Append(System.Globalization.CultureInfo.InvariantCulture, $"[{_clock.Elapsed.TotalSeconds,6:F2}] (test) SIGTERM").AppendLine();
        }

        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>SIGSTOP: the process stops answering without closing anything, as a hung pod or a lost node does.</summary>
    public void Freeze()
    {
        lock (_log)
        {
            _log.Append(System.Globalization.CultureInfo.InvariantCulture, $"[{_clock.Elapsed.TotalSeconds,6:F2}] (test) SIGSTOP").AppendLine();
        }

        using var stop = Process.Start("kill", ["-STOP", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        stop.WaitForExit();
    }

    /// <summary>SIGKILL: the process dies at once, as a crashed or OOM-killed pod does; no drain, no answers.</summary>
    public void Crash()
    {
        lock (_log)
        {
            _log.Append(System.Globalization.CultureInfo.InvariantCulture, $"[{_clock.Elapsed.TotalSeconds,6:F2}] (test) SIGKILL").AppendLine();
        }

        _process.Kill();
    }

    public async Task<int> ExitCodeAsync()
    {
        await _process.WaitForExitAsync().WaitAsync(Limits.Call);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        // The server's own account, with times, for a failure's reader (streams starting left out: there are many).
        foreach (var line in Log.Split('\n').Where(l => !l.Contains(" started (threshold", StringComparison.Ordinal)).TakeLast(60))
        {
            _output.WriteLine(line.TrimEnd());
        }
    }

    [GeneratedRegex(@"Now listening on: (http://127\.0\.0\.1:\d+)")]
    private static partial Regex Listening();
}
