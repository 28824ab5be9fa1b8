using System.Diagnostics;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.DependencyInjection;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>Runs the built server as a process, the way an operator does, and reads how it refuses to start.</summary>
public sealed class StartupTests
{
    [Theory]
    [InlineData("--Inference:ExecutionProvider=cuda", "CUDA execution provider could not start")]
    [InlineData("--Batching:MaxBatchSize=-1", "Batching:MaxBatchSize must be 1..256 (pairs; 0 or unset: the execution provider's default) (got -1)")]
    [InlineData("--Inference:ExecutionProvider=tpu", "must be 'cpu' or 'cuda'")]
    [InlineData("--Inference:ModelPath=/nonexistent/model", "does not exist")]
    [InlineData("--Inference:EmbeddedWidth=100", "multiples of 32")]
    [InlineData("--Inference:GpuMemoryLimitMb=-1", "Inference:GpuMemoryLimitMb must be 0..16777216 (0: no limit) (got -1)")]
    [InlineData("--Inference:CudnnConvAlgoSearch=Fastest", "Inference:CudnnConvAlgoSearch must be Exhaustive, Heuristic or Default")]
    [InlineData("--Inference:WarmUpBatchSizes:0=0", "Inference:WarmUpBatchSizes must hold positive batch sizes")]
    [InlineData("--Inference:FrameBankSlots=2000000000", "Inference:FrameBankSlots must be 0..65536")]
    [InlineData("--Limits:MaxMessageBytes=10", "Limits:MaxMessageBytes must be 65536..1073741824 (bytes) (got 10)")]
    [InlineData("--Metrics:Url=http://127.0.0.1", "with an explicit, non-zero port and no path, or empty to turn metrics off")]
    [InlineData("--Metrics:Url=https://0.0.0.0:9464/metrics", "Metrics:Url must be http://HOST:PORT")]
    [InlineData("--urls=http://127.0.0.1:47123", "Metrics:Url uses port 47123, which the gRPC endpoints")]
    [InlineData("--Inference:ModelPth=/models/x", "unknown setting 'Inference:ModelPth' (did you mean Inference:ModelPath?)")]
    [InlineData("--Batching:MaxBatchSise=3", "unknown setting 'Batching:MaxBatchSise' (did you mean Batching:MaxBatchSize?)")]
    [InlineData("--Inferense:ModelPath=/models/x", "unknown section 'Inferense' (did you mean Inference?)")]
    public async Task Main_BadSettingOrModel_ExitsNonZeroWithReason(string setting, string reason)
    {
        // Small defaults first: a later argument overrides an earlier one.
        var (exitCode, errors, output) = await RunServerAsync("--Inference:EmbeddedWidth=128", "--Inference:EmbeddedHeight=96", "--Metrics:Url=http://127.0.0.1:47123", setting);

        Assert.Equal(1, exitCode);
        Assert.Contains("VideoMatch server could not start", errors, StringComparison.Ordinal);
        Assert.Contains(reason, errors, StringComparison.Ordinal);
        // One line, no hosting stack trace and no "fail:" log before it.
        Assert.DoesNotContain("   at ", errors + output, StringComparison.Ordinal);
        Assert.DoesNotContain("fail:", errors + output, StringComparison.Ordinal);
        Assert.DoesNotContain(".;", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Main_SeveralBadSettings_EachASentenceWithoutDotSemicolon()
    {
        var (exitCode, errors, _) = await RunServerAsync("--urls=https://127.0.0.1:0", "--Metrics:Url=", "--Security:CertificatePath=/nonexistent/cert.pem");

        Assert.Equal(1, exitCode);
        Assert.Contains("could not start: Security:CertificatePath and Security:CertificateKeyPath go together: set both for TLS, or neither. Security:CertificatePath '/nonexistent/cert.pem' does not exist.", errors, StringComparison.Ordinal);
        Assert.DoesNotContain(".;", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Main_ModelPathIsAHuggingFaceCheckpoint_SaysToExportItFirst()
    {
        var folder = Directory.CreateTempSubdirectory("videomatch-hf-");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(folder.FullName, "config.json"), "{\"model_type\": \"efficientloftr\"}");
            await File.WriteAllBytesAsync(Path.Combine(folder.FullName, "model.safetensors"), new byte[16]);

            var (exitCode, errors, _) = await RunServerAsync("--Metrics:Url=", $"--Inference:ModelPath={folder.FullName}");

            Assert.Equal(1, exitCode);
            Assert.Contains($"'{folder.FullName}' is a Hugging Face checkpoint (config.json and its weights), not a model folder: export it first with /usr/bin/python3 tools/export/export.py --checkpoint {folder.FullName} --out models/NAME", errors, StringComparison.Ordinal);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("", 400)]
    [InlineData("Now listening on", 0)]
    [InlineData(" loaded: ", 0)]
    [InlineData(" loaded: ", 700)]
    public async Task Main_StopSignalDuringStartUp_ExitsCleanlyWithoutAStackTrace(string after, int delayMs)
    {
        // The embedded model warms up batches of 1 and 8 pairs (seconds on 2 cores): a SIGTERM at launch, while the
        // host starts, right after the model loads, and in the middle of the warm-up.
        using var process = Process.Start(Start(AppContext.BaseDirectory, ["--urls", "http://127.0.0.1:0", "--Metrics:Url=", "--Batching:MaxBatchSize=8", "--Inference:WarmUpBatchSizes:0=8"]))!;
        var Log = Capture(process);

        await Limits.UntilAsync(() => process.HasExited || Log().Contains(after, StringComparison.Ordinal), $"the server to print '{after}'");
        await Task.Delay(delayMs);
        Assert.False(Log().Contains("; ready", StringComparison.Ordinal), "the stop should land during start-up; the server was already ready:\n" + Log());
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync().DefaultTimeout();
        }

        await process.WaitForExitAsync().WaitAsync(Limits.Call);
        process.WaitForExit();

        // A signal before the runtime runs any code of ours (the first few hundred milliseconds of a loaded machine)
        // gets the system's default: exit 143 with nothing begun and nothing printed.
        Assert.True(process.ExitCode is 0 or 1 || (process.ExitCode == 143 && Log().Trim().Length == 0), $"exit code {process.ExitCode}:\n{Log()}");
        Assert.DoesNotContain("Unhandled exception", Log(), StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", Log(), StringComparison.Ordinal);
    }

    public static TheoryData<string, string> OutOfRangeSettings()
    {
        var data = new TheoryData<string, string>();
        foreach (var (key, type) in VideoMatch.Server.Hosting.SettingsCatalog.Numeric())
        {
            data.Add(key, "-1");
            data.Add(key, type == typeof(int) ? "2147483647" : type == typeof(long) ? "9223372036854775807" : "1e300");
            if (type == typeof(double))
            {
                data.Add(key, "NaN");
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(OutOfRangeSettings))]
    public void Build_NumericSettingOutOfRange_RefusedNamingTheSetting(string key, string value)
    {
        // Every numeric setting has both bounds: no value reaches arithmetic that overflows (FrameBankSlots =
        // 2000000000 crashed a split model's start with an OverflowException, exit 134).
        var error = Assert.ThrowsAny<Exception>(() => ServerApp.Build(["--urls", "http://127.0.0.1:0", "--Metrics:Url=", $"--{key}={value}"]));

        Assert.IsType<Microsoft.Extensions.Options.OptionsValidationException>(error);
        var setting = key.EndsWith(":0", StringComparison.Ordinal) ? key[..^2] : key;
        Assert.Contains(setting, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public async Task Main_PortInUse_OneLineBeforeAnyWarmUp()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;

        var (exitCode, errors, output) = await RunServerAsync($"--urls=http://127.0.0.1:{port}", "--Inference:WarmUp=true");

        Assert.Equal(1, exitCode);
        Assert.Contains($"Failed to bind to address http://127.0.0.1:{port}", errors, StringComparison.Ordinal);
        Assert.Contains("pick another address with --urls", errors, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", errors + output, StringComparison.Ordinal);
        Assert.DoesNotContain("warmed up", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Main_CertificatesWithAPlaintextAddress_RefusesToStartNamingIt(bool fromEnvironment)
    {
        // From the command line, or as the container image sets it (Urls=http://+:50051).
        var folder = Directory.CreateTempSubdirectory("videomatch-tls-start-");
        try
        {
            var certificates = new TestCertificates(folder.FullName);
            var (exitCode, errors, output) = fromEnvironment
                ? await RunAsync(new Dictionary<string, string> { ["Urls"] = "http://+:0" }, [.. certificates.ServerSettings(), "--Metrics:Url="])
                : await RunServerAsync([.. certificates.ServerSettings(), "--urls=http://127.0.0.1:0"]);

            Assert.Equal(1, exitCode);
            Assert.Contains("TLS is configured (Security:CertificatePath) but the gRPC address", errors, StringComparison.Ordinal);
            Assert.Contains("is plaintext", errors, StringComparison.Ordinal);
            Assert.DoesNotContain("Now listening", output, StringComparison.Ordinal);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Main_CertificatesAndTheShippedSettings_ListenOnHttpsOnly()
    {
        // No address given: the shipped settings decide. The default port may be taken on a developer's machine; the
        // address the server tried is then in the bind error, and must be https either way.
        var folder = Directory.CreateTempSubdirectory("videomatch-tls-default-");
        try
        {
            var certificates = new TestCertificates(folder.FullName);
            var (log, answered) = await RunUntilAsync([.. certificates.ServerSettings(), "--Metrics:Url=", "--Inference:WarmUp=false"],
                "; ready", async () =>
                {
                    using var client = new VideoMatch.Client.VideoMatchClient(new VideoMatch.Client.VideoMatchClientOptions { Address = new Uri("https://127.0.0.1:50051"), AllowUntrustedServerCertificate = true });
                    return (await client.GetModelInfoAsync(Limits.Token())).ModelName;
                });

            Assert.Contains("https://127.0.0.1:50051", log, StringComparison.Ordinal);
            Assert.DoesNotContain("http://127.0.0.1:50051", log, StringComparison.Ordinal);
            Assert.True(answered is null or "videomatch-embedded-patch-matcher", $"answered {answered}");
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("server.pem", "could not be loaded as a PEM certificate and its private key")]
    [InlineData("server.key", "could not be loaded as a PEM certificate and its private key")]
    [InlineData("ca.pem", "is not a PEM certificate")]
    public async Task Main_BadCertificateFile_OneLineAndExitOne(string file, string reason)
    {
        var folder = Directory.CreateTempSubdirectory("videomatch-tls-bad-");
        try
        {
            var certificates = new TestCertificates(folder.FullName);
            await File.WriteAllTextAsync(certificates.Path(file), "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");

            var (exitCode, errors, output) = await RunServerAsync([.. certificates.MutualSettings(), "--urls=https://127.0.0.1:0"]);

            Assert.Equal(1, exitCode);
            Assert.Contains("VideoMatch server could not start", errors, StringComparison.Ordinal);
            Assert.Contains(reason, errors, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", errors + output, StringComparison.Ordinal);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("--urls=http://127.0.0.1:99999", "is not http://HOST:PORT or https://HOST:PORT with a port from 0 to 65535")]
    [InlineData("--urls=https://127.0.0.1:0", "is https but no certificate is configured")]
    [InlineData("--urls=ftp://127.0.0.1:21", "is not http://HOST:PORT")]
    public async Task Main_UnusableAddress_OneLineAndExitOne(string setting, string reason)
    {
        var (exitCode, errors, output) = await RunServerAsync(setting);

        Assert.Equal(1, exitCode);
        Assert.Contains(reason, errors, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", errors + output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Main_Help_ListsEverySettingWithItsDefaultAndStartsNothing()
    {
        var (exitCode, _, output) = await RunServerAsync("--help");

        Assert.Equal(0, exitCode);
        Assert.Contains("--Batching:MaxBatchSize=0", output, StringComparison.Ordinal);
        Assert.Contains("--Inference:WarmUpBatchSizes=", output, StringComparison.Ordinal);
        Assert.Contains("--Metrics:Url=http://127.0.0.1:9464", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Now listening", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Main_RelativeModelPathFromAnotherDirectory_ResolvesThereAndLogsNoFailureWhileWarmingUp()
    {
        // A user's folder holding a model folder; the server runs from there (not from its own folder) and must
        // still read its appsettings.json, and answer health checks during warm-up without logging failures.
        var folder = Directory.CreateTempSubdirectory("videomatch-cwd-").FullName;
        try
        {
            VideoMatch.Engine.Inference.ModelLoader.WriteEmbedded(Path.Combine(folder, "model"), 320, 256);
            using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            listener.Start();
            var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            var start = Start(folder, $"--urls=http://127.0.0.1:{port}", "--Metrics:Url=", "--Inference:ModelPath=model", "--Batching:MaxBatchSize=32", "--Inference:WarmUpBatchSizes:0=32");
            using var process = Process.Start(start)!;
            var output = new System.Text.StringBuilder();
            process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
            process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                using var client = new VideoMatch.Client.VideoMatchClient(new Uri($"http://127.0.0.1:{port}"));
                var notReady = 0;
                var serving = false;
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (!serving && DateTime.UtcNow < deadline && !process.HasExited)
                {
                    try
                    {
                        using var attempt = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                        serving = await client.CheckHealthAsync(attempt.Token) == Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving;
                        notReady += serving ? 0 : 1;
                    }
                    catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.Unavailable)
                    {
                        // Not listening yet.
                    }

                    await Task.Delay(20);
                }

                string log;
                lock (output)
                {
                    log = output.ToString();
                }

                Assert.True(serving, log);
                var info = await client.GetModelInfoAsync();
                Assert.Equal(("videomatch-embedded-patch-matcher", 320u), (info.ModelName, info.InputWidth));
                Assert.True(notReady > 0, "health was asked during warm-up at least once");
                Assert.DoesNotContain("fail:", log, StringComparison.Ordinal);
            }
            finally
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync().DefaultTimeout();
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Main_ModelFolderWithBrokenManifest_ExitsNonZeroNamingTheProblem()
    {
        var folder = Directory.CreateTempSubdirectory("videomatch-broken-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(folder, "videomatch-model.json"), """{ "name": "x", "input": { "width": 100, "height": 64 }, "graphs": [] }""");
            await File.WriteAllBytesAsync(Path.Combine(folder, "model.onnx"), [1, 2, 3]);

            var (exitCode, errors, _) = await RunServerAsync($"--Inference:ModelPath={folder}");

            Assert.Equal(1, exitCode);
            Assert.Contains("multiples of coarseStride 8 (got 100×64)", errors, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Main_ManifestFromBeforeTheGraphContract_ExitsSayingToExportAgain()
    {
        var folder = Directory.CreateTempSubdirectory("videomatch-old-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(folder, "videomatch-model.json"), """{ "name": "x", "onnxFile": "model.onnx", "input": { "name": "pixel_values", "width": 64, "height": 64 } }""");
            await File.WriteAllBytesAsync(Path.Combine(folder, "model.onnx"), [1, 2, 3]);

            var (exitCode, errors, _) = await RunServerAsync($"--Inference:ModelPath={folder}");

            Assert.Equal(1, exitCode);
            Assert.Contains("describes no graphs: it was written by an exporter older than the graph contract. Export the model again with tools/export/export.py", errors, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static ProcessStartInfo Start(string workingDirectory, params string[] settings)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            WorkingDirectory = workingDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "VideoMatch.Server.dll"));
        foreach (var setting in settings)
        {
            start.ArgumentList.Add(setting);
        }

        return start;
    }

    private static Task<(int ExitCode, string Errors, string Output)> RunServerAsync(params string[] settings) =>
        RunAsync(null, ["--urls", "http://127.0.0.1:0", "--Metrics:Url=", .. settings]);

    /// <summary>Runs the server to its exit, with <paramref name="environment"/> added to this process's.</summary>
    private static async Task<(int ExitCode, string Errors, string Output)> RunAsync(IReadOnlyDictionary<string, string>? environment, string[] settings)
    {
        var start = Start(AppContext.BaseDirectory, settings);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var (exitCode, output, errors) = await ProcessRuns.ToExitAsync(start);
        return (exitCode, errors, output);
    }

    /// <summary>Collects a started process's standard output and error as they come; the function reads what has come so far.</summary>
    private static Func<string> Capture(Process process)
    {
        var output = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return () =>
        {
            lock (output)
            {
                return output.ToString();
            }
        };
    }

    /// <summary>
    /// Starts the server, waits until its output holds <paramref name="text"/> or it exits, then (still running)
    /// asks <paramref name="probe"/>; returns the output and the probe's answer (null when it had exited), and stops it.
    /// </summary>
    private static async Task<(string Output, string? Answer)> RunUntilAsync(string[] settings, string text, Func<Task<string>> probe)
    {
        using var process = Process.Start(Start(AppContext.BaseDirectory, settings))!;
        var Log = Capture(process);

        try
        {
            await Limits.UntilAsync(() => process.HasExited || Log().Contains(text, StringComparison.Ordinal), $"the server to print {text}");
            var answer = process.HasExited ? null : await probe();
            return (Log(), answer);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync().DefaultTimeout();
        }
    }
}

public sealed class WarmUpTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task Start_BatchSizeUnset_OnePairBatchesOnCpuSaidAtStartWithTheGraph()
    {
        await using var server = await ServerProcess.StartAsync(output, "--Inference:EmbeddedWidth=320", "--Inference:EmbeddedHeight=256");
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(server.Address);
        var client = new VideoMatch.Contracts.V1.VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));

        var info = await client.GetModelInfoAsync(new VideoMatch.Contracts.V1.GetModelInfoRequest());

        Assert.Equal(1u, info.MaxBatchSize);
        Assert.Equal("the embedded whole-pair graph, fp32", info.Graph);
        Assert.Contains("loaded: the embedded whole-pair graph, fp32, input 320×256, execution provider cpu, batches of up to 1", server.Log, StringComparison.Ordinal);
        Assert.Contains("Batching:MaxBatchSize 1, the default on the CPU (batching buys no speed on CPU cores", server.Log, StringComparison.Ordinal);
        Assert.Contains("Model embedded warmed up (batch sizes 1: 1 pairs, 0 frames encoded, not counted in metrics)", server.Log, StringComparison.Ordinal);
    }

    [Fact]
    public void ChooseFor_Unset_TheProvidersDefaultAndWhy()
    {
        var cpu = new VideoMatch.Engine.Batching.BatchingOptions();
        var cuda = new VideoMatch.Engine.Batching.BatchingOptions();

        cpu.ChooseFor(cuda: false);
        cuda.ChooseFor(cuda: true);

        Assert.Equal((1, 8), (cpu.MaxBatchSize, cuda.MaxBatchSize));
        Assert.StartsWith("Batching:MaxBatchSize 8, the default on CUDA", cuda.MaxBatchSizeChoice, StringComparison.Ordinal);
    }

    [Fact]
    public void ChooseFor_Set_KeepsTheSettingAndSaysNothing()
    {
        var set = new VideoMatch.Engine.Batching.BatchingOptions { MaxBatchSize = 4 };

        set.ChooseFor(cuda: true);

        Assert.Equal(4, set.MaxBatchSize);
        Assert.Null(set.MaxBatchSizeChoice);
    }

    [Fact]
    public async Task Start_WarmUpBatchSizes_RunsEachSizeBeforeReady()
    {
        using var server = new ServerFactory(new Dictionary<string, string?>
        {
            ["Inference:WarmUp"] = "true",
            ["Inference:WarmUpBatchSizes:0"] = "1",
            ["Inference:WarmUpBatchSizes:1"] = "3",
            ["Inference:WarmUpBatchSizes:2"] = "20",
        });

        var info = await server.Client.GetModelInfoAsync(new VideoMatch.Contracts.V1.GetModelInfoRequest(), deadline: Limits.Deadline);
        var runtime = server.Services.GetRequiredService<VideoMatch.Server.Hosting.MatchingRuntime>();

        // 20 is above Batching:MaxBatchSize (8): it is warmed at 8.
        Assert.Equal([1, 3, 8], runtime.WarmedUpBatchSizes);
        Assert.True(runtime.IsReady);
        Assert.Equal(8u, info.MaxBatchSize);
    }
}
