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
        Assert.Equal(4, lines.Length);
        Assert.All(lines, l => Assert.Contains(": passed:", l, StringComparison.Ordinal));
        Assert.Contains("fp32 split", error, StringComparison.Ordinal);
        Assert.Contains("-fp16 on cpu", output, StringComparison.Ordinal);
        // Each line names its graph.
        Assert.StartsWith("fp32, whole-pair graph model.onnx, fp32", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("fp32 split, split graphs (encoder encoder.onnx once per frame + matcher matcher.onnx), fp32", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("fp16, whole-pair graph model-fp16.onnx, fp16", lines[2], StringComparison.Ordinal);
        Assert.StartsWith("fp16 split, split graphs (encoder encoder-fp16.onnx once per frame + matcher matcher-fp16.onnx), fp16", lines[3], StringComparison.Ordinal);
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
        // Every image-1 point moved by 2 px: at least that far, for every match (near-duplicate matches 2 px apart may pair crosswise).
        var moved = System.Text.RegularExpressions.Regex.Match(output, @"largest keypoint difference ([0-9.]+) px \(([0-9]+) above 0.001 px");
        Assert.True(moved.Success && double.Parse(moved.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 2, output);
    }

    [Fact]
    public async Task Verify_EmbeddedModelFolder_PassesItsOwnSelfCheck()
    {
        var folder = Directory.CreateTempSubdirectory("videomatch-verify-").FullName;
        try
        {
            VideoMatch.Engine.Inference.ModelLoader.WriteEmbedded(folder, 64, 64);

            var (exit, output, error) = await CliTests.RunAsync("verify", folder);

            Assert.True(exit == 0, output + error);
            Assert.Contains(": passed:", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("missing", "does not exist: give a model folder written by tools/export/export.py")]
    [InlineData("empty folder", "holds no videomatch-model.json: give a model folder written by tools/export/export.py")]
    [InlineData("checkpoint", "is a Hugging Face checkpoint (config.json and its weights), not a model folder: export it first with /usr/bin/python3 tools/export/export.py --checkpoint")]
    [InlineData("no self-check", "names no self-check (export.selfCheck)")]
    [InlineData("self-check deleted", "names self-check file 'selfcheck.safetensors', which does not exist")]
    [InlineData("self-check cut", "does not fit its data offsets")]
    [InlineData("self-check a FIFO", "is empty or not a regular file (a device or a FIFO)")]
    [InlineData("self-check /dev/zero", "lies outside the model folder")]
    [InlineData("manifest cut", "is not valid: ")]
    [InlineData("output renamed", "it has no output 'match_scores'")]
    [InlineData("output shape changed", "output 0 'matches' int64 [batch, 2, 99] must be int64 [batch, 2, 64]")]
    [InlineData("graph dtype changed", "model.onnx input 'pixel_values' float16 [batch, 2, 1, 64, 64] does not fit the input section: expected float32 [batch, 2, 1, 64, 64]")]
    public async Task Verify_FolderThatDoesNotCheckOut_OneLineSayingWhatIsWrong(string damage, string message)
    {
        var root = Directory.CreateTempSubdirectory("videomatch-verify-").FullName;
        try
        {
            var folder = Path.Combine(root, "model");
            Damage(folder, damage);

            var (exit, output, error) = await CliTests.RunAsync("verify", folder);

            Assert.True(exit == 1, output + error);
            Assert.Contains(message, error, StringComparison.Ordinal);
            Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.DoesNotContain("please report", error, StringComparison.Ordinal);
            Assert.DoesNotContain("Inference:", error, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [SharedDataFact("models/xfeat-lighterglue/xfeat_2048_640x360.onnx")]
    public async Task Verify_XFeatFolder_SaysThereIsNothingToVerify()
    {
        var folder = Path.GetDirectoryName(SharedData.Find("models/xfeat-lighterglue/xfeat_2048_640x360.onnx"))!;

        var (exit, _, error) = await CliTests.RunAsync("verify", folder);

        Assert.Equal(1, exit);
        Assert.Contains("XFeat + LighterGlue (xfeat_2048_640x360.onnx + ", error, StringComparison.Ordinal);
        Assert.Contains("come without a self-check, so there is nothing to verify; serve the folder as it is.", error, StringComparison.Ordinal);
    }

    private static void Damage(string folder, string damage)
    {
        if (damage == "missing")
        {
            return;
        }

        Directory.CreateDirectory(folder);
        if (damage == "empty folder")
        {
            return;
        }

        if (damage == "checkpoint")
        {
            File.WriteAllText(Path.Combine(folder, "config.json"), "{}");
            File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), new byte[16]);
            return;
        }

        VideoMatch.Engine.Inference.ModelLoader.WriteEmbedded(folder, 64, 64);
        var manifest = Path.Combine(folder, "videomatch-model.json");
        var selfCheck = Path.Combine(folder, "selfcheck.safetensors");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(manifest))!;
        switch (damage)
        {
            case "no self-check":
                json["export"]!["selfCheck"] = "";
                break;
            case "self-check deleted":
                File.Delete(selfCheck);
                break;
            case "self-check cut":
                File.WriteAllBytes(selfCheck, File.ReadAllBytes(selfCheck)[..4000]);
                break;
            case "self-check a FIFO":
                File.Delete(selfCheck);
                using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", selfCheck))
                {
                    mkfifo.WaitForExit();
                }

                break;
            case "self-check /dev/zero":
                json["export"]!["selfCheck"] = "/dev/zero";
                break;
            case "output renamed":
                json["graphs"]![0]!["outputs"]![1]!["name"] = "match_scores";
                break;
            case "output shape changed":
                json["graphs"]![0]!["outputs"]![0]!["shape"]![2] = 99;
                break;
            case "graph dtype changed":
                json["graphs"]![0]!["inputs"]![0]!["dtype"] = "float16";
                break;
        }

        File.WriteAllText(manifest, damage == "manifest cut" ? json.ToJsonString()[..120] : json.ToJsonString());
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
