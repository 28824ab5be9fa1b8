using System.Diagnostics;
using System.Text.Json.Nodes;
using VideoMatch.Engine.Inference;
using VideoMatch.Engine.Models;
using VideoMatch.Tests;

namespace VideoMatch.Engine.Tests.Inference;

/// <summary>
/// A model folder is trusted only as far as it checks out, tried as an attacker would: files named outside the
/// folder, devices and FIFOs, missing, cut or foreign self-checks, and a manifest that misdescribes its graph.
/// </summary>
public sealed class ModelFolderTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("videomatch-folder-").FullName;
    private readonly string _folder;

    public ModelFolderTests()
    {
        _folder = Path.Combine(_root, "model");
        ModelLoader.WriteEmbedded(_folder, 64, 64);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void SelfCheck_WrittenEmbeddedFolder_PassesAndRecordsItsLayout()
    {
        using var matcher = Open();

        var report = SelfCheck.Run(matcher, SelfCheckPath(), SelfCheckTolerances.Fp32);

        Assert.True(report.Passed, report.ToString());
        Assert.True(report.Reference > 0, report.ToString());
        Assert.Equal("PairSlots", Safetensors.Read(SelfCheckPath()).Metadata["layout"]);
    }

    [ExportedModelFact("tiny")]
    public void SelfCheck_ExportWithAnEditedLayout_FailsAsTheServerReadsTheOutputs()
    {
        // The graph still computes pair slots; read as cell indices, each image-1 point is another cell's.
        var folder = Path.Combine(_root, "tiny");
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(ExportedModels.Folder("tiny")))
        {
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        }

        Edit(m => m["outputs"]!["layout"] = "CellIndex", folder);
        using var matcher = ModelLoader.Open(new InferenceOptions { ModelPath = folder }, 2);

        var report = SelfCheck.Run(matcher, Path.Combine(folder, "selfcheck.safetensors"), SelfCheckTolerances.Fp32);

        Assert.False(report.Passed, report.ToString());
        Assert.True(report.Added > 0 && report.Kept < report.Reference, report.ToString());
    }

    [Theory]
    [InlineData("../outside.onnx", "lies outside the model folder")]
    [InlineData("/etc/hostname", "lies outside the model folder")]
    [InlineData("missing.onnx", "does not exist")]
    [InlineData("", "is empty")]
    public void Open_OnnxFileNamedOutsideOrMissing_RefusedNamingTheFile(string onnxFile, string problem)
    {
        File.Copy(Path.Combine(_folder, "model.onnx"), Path.Combine(_root, "outside.onnx"));
        Edit(m => m["graphs"]![0]!["file"] = onnxFile);

        var error = Assert.Throws<InvalidOperationException>(Open);

        Assert.Contains($"names pair graph '{onnxFile}', which {problem}", error.Message, StringComparison.Ordinal);
        Assert.StartsWith("Inference:ModelPath: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_OnnxFileLinkedFromOutside_Refused()
    {
        File.Copy(Path.Combine(_folder, "model.onnx"), Path.Combine(_root, "outside.onnx"));
        File.CreateSymbolicLink(Path.Combine(_folder, "linked.onnx"), Path.Combine(_root, "outside.onnx"));
        Edit(m => m["graphs"]![0]!["file"] = "linked.onnx");

        var error = Assert.Throws<InvalidOperationException>(Open);

        Assert.Contains("is a link to", error.Message, StringComparison.Ordinal);
        Assert.Contains("outside the model folder", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_OnnxFileLinkedInsideTheFolder_Loads()
    {
        // As Kubernetes mounts a ConfigMap: names that are links into a folder beside them, inside the mount.
        Directory.CreateDirectory(Path.Combine(_folder, "..data"));
        File.Move(Path.Combine(_folder, "model.onnx"), Path.Combine(_folder, "..data", "model.onnx"));
        File.CreateSymbolicLink(Path.Combine(_folder, "model.onnx"), "..data/model.onnx");

        using var matcher = Open();

        Assert.Equal(64, matcher.Manifest.Input.Width);
    }

    [Theory]
    [InlineData("/dev/zero", "lies outside the model folder")]
    [InlineData("zero", "is a link to '/dev/zero', outside the model folder")]
    [InlineData("fifo", "is empty or not a regular file (a device or a FIFO)")]
    [InlineData("", "names no self-check")]
    [InlineData("gone.safetensors", "does not exist")]
    public void SelfCheckPath_DeviceFifoOrNone_RefusedBeforeAnythingIsRead(string selfCheck, string problem)
    {
        File.CreateSymbolicLink(Path.Combine(_folder, "zero"), "/dev/zero");
        MakeFifo(Path.Combine(_folder, "fifo"));
        Edit(m => m["export"]!["selfCheck"] = selfCheck);
        var manifest = ModelManifest.Load(_folder);

        var error = Assert.Throws<InvalidDataException>(() => manifest.SelfCheckPath(manifest.SourceFile));

        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cut")]
    [InlineData("header cut")]
    [InlineData("garbage")]
    [InlineData("huge dimension")]
    [InlineData("negative dimension")]
    [InlineData("no keypoints")]
    [InlineData("foreign")]
    [InlineData("unknown layout")]
    public void SelfCheck_DamagedFile_InvalidDataNamingTheFile(string damage)
    {
        var path = SelfCheckPath();
        var bytes = File.ReadAllBytes(path);
        var (tensors, metadata) = Safetensors.Read(path);
        switch (damage)
        {
            case "cut":
                File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
                break;
            case "header cut":
                File.WriteAllBytes(path, bytes[..20]);
                break;
            case "garbage":
                File.WriteAllBytes(path, [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 37))]);
                break;
            case "huge dimension":
                PatchShape(path, bytes, "[9999999,999]");
                break;
            case "negative dimension":
                PatchShape(path, bytes, "[3,2,1,64,-6]");
                break;
            case "no keypoints":
                Safetensors.Write(path, tensors.Where(t => t.Key != "keypoints").ToDictionary(), metadata);
                break;
            case "foreign":
                // A self-check written for another input size.
                ModelLoader.WriteEmbedded(Path.Combine(_root, "other"), 96, 64);
                File.Copy(Path.Combine(_root, "other", "selfcheck.safetensors"), path, overwrite: true);
                break;
            case "unknown layout":
                Safetensors.Write(path, tensors, new Dictionary<string, string>(metadata) { ["layout"] = "Diagonal" });
                break;
        }

        using var matcher = Open();

        var error = Assert.Throws<InvalidDataException>(() => SelfCheck.Run(matcher, path, SelfCheckTolerances.Fp32));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
    }

    private IPairMatcher Open() => ModelLoader.Open(new InferenceOptions { ModelPath = _folder, IntraOpThreads = 1 }, 2);

    private string SelfCheckPath() => Path.Combine(_folder, "selfcheck.safetensors");

    /// <summary>Replaces the pixels' shape in the header by one of the same length.</summary>
    private static void PatchShape(string path, byte[] bytes, string shape)
    {
        var header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)BitConverter.ToUInt64(bytes));
        var patched = System.Text.Encoding.UTF8.GetBytes(header.Replace("[3,2,1,64,64]", shape, StringComparison.Ordinal));
        Assert.Equal(header.Length, patched.Length);
        Assert.NotEqual(header, System.Text.Encoding.UTF8.GetString(patched));
        patched.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
    }

    private void Edit(Action<JsonNode> edit, string? folder = null)
    {
        var file = Path.Combine(folder ?? _folder, ModelManifest.FileName);
        var json = JsonNode.Parse(File.ReadAllText(file))!;
        edit(json);
        File.WriteAllText(file, json.ToJsonString());
    }

    private static void MakeFifo(string path)
    {
        using var mkfifo = Process.Start("mkfifo", path);
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
    }
}
