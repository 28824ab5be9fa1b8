using System.Text.Json;
using VideoMatch.Tests;

namespace VideoMatch.Cli.Tests;

public sealed class VerifyTests
{
    [ExportedModelFact("tiny")]
    public async Task Verify_GoodExportWithSplitAndFp16_PassesEveryGraph()
    {
        var folder = ExportedModels.Folder("tiny", "--split", "--fp16");

        var (exit, output, error) = await CliTests.RunAsync("verify", folder);

        Assert.True(exit == 0, output + error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.All(lines, l => Assert.Contains(": passed:", l, StringComparison.Ordinal));
        Assert.Contains("fp32 split", error, StringComparison.Ordinal);
        Assert.Contains("-fp16 on cpu", output, StringComparison.Ordinal);
        // Each line names its graph.
        Assert.StartsWith("fp32, whole-pair graph model.onnx, fp32", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("fp32 split, split graphs (encoder encoder.onnx once per frame + matcher matcher.onnx), fp32", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("fp16, whole-pair graph model-fp16.onnx, fp16", lines[2], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_Help_ListsOnlyWhatVerifyUses()
    {
        var (exit, output, _) = await CliTests.RunAsync("verify", "--help");

        Assert.Equal(0, exit);
        Assert.Contains("--provider", output, StringComparison.Ordinal);
        Assert.DoesNotContain("--server", output, StringComparison.Ordinal);
        Assert.DoesNotContain("--api-key", output, StringComparison.Ordinal);
    }

    [ExportedModelFact("tiny")]
    public async Task Verify_ExportThatDisagreesWithItsSelfCheck_FailsWithTheFigures()
    {
        var (exit, output, _) = await CliTests.RunAsync("verify", ExportedModels.Tampered("tiny"));

        Assert.Equal(1, exit);
        Assert.Contains("FAILED", output, StringComparison.Ordinal);
        Assert.Contains("largest keypoint difference 2 px", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_FolderWithoutSelfCheck_SaysOnlyExportsHaveOne()
    {
        var folder = Directory.CreateTempSubdirectory("videomatch-verify-").FullName;
        try
        {
            VideoMatch.Engine.Inference.ModelLoader.WriteEmbedded(folder, 64, 64);

            var (exit, _, error) = await CliTests.RunAsync("verify", folder);

            Assert.Equal(1, exit);
            Assert.Contains("has no self-check", error, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Cli_RuntimeConfig_NeedsOnlyThePlainDotNetRuntime()
    {
        // The CLI must start where only the .NET runtime is installed (no ASP.NET Core shared framework).
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "videomatch.runtimeconfig.json")));
        var options = config.RootElement.GetProperty("runtimeOptions");
        var frameworks = options.TryGetProperty("frameworks", out var list)
            ? list.EnumerateArray().Select(f => f.GetProperty("name").GetString() ?? "").ToArray()
            : [options.GetProperty("framework").GetProperty("name").GetString() ?? ""];

        Assert.Equal(["Microsoft.NETCore.App"], frameworks);
    }
}
