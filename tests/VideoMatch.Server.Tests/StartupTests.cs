using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

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
    public async Task Main_BadSettingOrModel_ExitsNonZeroWithReason(string setting, string reason)
    {
        // Small defaults first: a later argument overrides an earlier one.
        var (exitCode, errors) = await RunServerAsync("--Inference:EmbeddedWidth=128", "--Inference:EmbeddedHeight=96", "--Metrics:Url=http://127.0.0.1:47123", setting);

        Assert.Equal(1, exitCode);
        Assert.Contains("VideoMatch server could not start", errors, StringComparison.Ordinal);
        Assert.Contains(reason, errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Main_ModelFolderWithBrokenManifest_ExitsNonZeroNamingTheProblem()
    {
        var folder = Directory.CreateTempSubdirectory("videomatch-broken-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(folder, "videomatch-model.json"), """{ "name": "x", "input": { "width": 100, "height": 64 } }""");
            await File.WriteAllBytesAsync(Path.Combine(folder, "model.onnx"), [1, 2, 3]);

            var (exitCode, errors) = await RunServerAsync($"--Inference:ModelPath={folder}");

            Assert.Equal(1, exitCode);
            Assert.Contains("multiples of coarseStride 8 (got 100×64)", errors, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task<(int ExitCode, string Errors)> RunServerAsync(params string[] settings)
    {
        var server = Path.Combine(AppContext.BaseDirectory, "VideoMatch.Server.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(server);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add("http://127.0.0.1:0");
        start.ArgumentList.Add("--Metrics:Url=");
        foreach (var setting in settings)
        {
            start.ArgumentList.Add(setting);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The server did not exit within 60 s with {string.Join(' ', settings)}; output: {await output}");
        }

        await output;
        return (process.ExitCode, await errors);
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

        var info = await server.Client.GetModelInfoAsync(new VideoMatch.Contracts.V1.GetModelInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(60));
        var runtime = server.Services.GetRequiredService<VideoMatch.Server.Hosting.MatchingRuntime>();

        // 20 is above Batching:MaxBatchSize (8): it is warmed at 8.
        Assert.Equal([1, 3, 8], runtime.WarmedUpBatchSizes);
        Assert.True(runtime.IsReady);
        Assert.Equal(8u, info.MaxBatchSize);
    }
}
