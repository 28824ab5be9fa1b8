using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>Runs the built server as a process, the way an operator does, and reads how it refuses to start.</summary>
public sealed class StartupTests
{
    [Theory]
    [InlineData("--Inference:ExecutionProvider=cuda", "CUDA execution provider could not start")]
    [InlineData("--Batching:MaxBatchSize=0", "Batching:MaxBatchSize must be 1..256")]
    [InlineData("--Inference:ExecutionProvider=tpu", "must be 'cpu' or 'cuda'")]
    [InlineData("--Inference:ModelPath=/nonexistent/model", "does not exist")]
    [InlineData("--Inference:EmbeddedWidth=100", "multiples of 32")]
    [InlineData("--Inference:GpuMemoryLimitMb=-1", "Inference:GpuMemoryLimitMb must be 0 (no limit) or more")]
    [InlineData("--Inference:CudnnConvAlgoSearch=Fastest", "Inference:CudnnConvAlgoSearch must be Exhaustive, Heuristic or Default")]
    [InlineData("--Inference:WarmUpBatchSizes:0=0", "Inference:WarmUpBatchSizes must hold positive batch sizes")]
    [InlineData("--Limits:MaxMessageBytes=10", "Limits:MaxMessageBytes must be at least 65536")]
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

    [Fact]
    public async Task Main_Help_ListsEverySettingWithItsDefaultAndStartsNothing()
    {
        var (exitCode, _, output) = await RunServerAsync("--help");

        Assert.Equal(0, exitCode);
        Assert.Contains("--Batching:MaxBatchSize=8", output, StringComparison.Ordinal);
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
            var start = Start(folder, $"--urls=http://127.0.0.1:{port}", "--Metrics:Url=", "--Inference:ModelPath=model", "--Inference:WarmUpBatchSizes:0=8");
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
                await process.WaitForExitAsync();
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
            await File.WriteAllTextAsync(Path.Combine(folder, "videomatch-model.json"), """{ "name": "x", "input": { "width": 100, "height": 64 } }""");
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

    private static async Task<(int ExitCode, string Errors, string Output)> RunServerAsync(params string[] settings)
    {
        var start = Start(AppContext.BaseDirectory, ["--urls", "http://127.0.0.1:0", "--Metrics:Url=", .. settings]);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(Limits.Call);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The server did not exit within 60 s with {string.Join(' ', settings)}; output: {await output}");
        }

        return (process.ExitCode, await errors, await output);
    }
}

public sealed class WarmUpTests
{
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
