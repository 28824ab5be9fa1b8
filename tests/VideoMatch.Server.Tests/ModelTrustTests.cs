using System.Diagnostics;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Health.V1;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Inference;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>
/// A model folder is trusted only as far as it checks out: a self-check that is missing, cut, a device or a FIFO,
/// or a manifest that misdescribes its graph, leaves the server NOT_SERVING with the reason: no crash, no hang, no
/// wrong matches served.
/// </summary>
public sealed class ModelTrustTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("videomatch-trust-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData("cut", "does not fit its data offsets")]
    [InlineData("fifo", "is empty or not a regular file (a device or a FIFO)")]
    [InlineData("/dev/zero", "lies outside the model folder")]
    [InlineData("none", "names no self-check")]
    public async Task Start_FolderWithAnUnusableSelfCheck_NotServingWithTheReason(string damage, string reason)
    {
        var model = Damaged(damage);
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Inference:ModelPath"] = model });

        var (status, error) = await AskAsync(server);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, status);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("self-check could not run", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(reason, error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_NoSelfCheckAndSelfCheckOff_ServesAsTheOperatorChose()
    {
        var model = Damaged("none");
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Inference:ModelPath"] = model, ["Inference:SelfCheck"] = "false" });

        var info = await server.Client.GetModelInfoAsync(new GetModelInfoRequest(), deadline: Limits.Deadline);

        Assert.Equal(64u, info.InputWidth);
    }

    [ExportedModelFact("tiny")]
    public async Task Start_ExportWhoseManifestMisdescribesTheLayout_NeverServes()
    {
        // Before: the raw outputs agreed slot by slot, so the check passed and every pair was read wrongly while SERVING.
        foreach (var file in Directory.GetFiles(ExportedModels.Folder("tiny")))
        {
            File.Copy(file, Path.Combine(_folder, Path.GetFileName(file)));
        }

        EditManifest(_folder, m => m["outputs"]!["layout"] = "CellIndex");
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Inference:ModelPath"] = _folder });

        var (status, error) = await AskAsync(server);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, status);
        Assert.Contains("failed its self-check", error.Status.Detail, StringComparison.Ordinal);
    }

    /// <summary>The embedded model written as a folder, its self-check damaged as <paramref name="damage"/> says.</summary>
    private string Damaged(string damage)
    {
        var model = Path.Combine(_folder, "model");
        ModelLoader.WriteEmbedded(model, 64, 64);
        var selfCheck = Path.Combine(model, "selfcheck.safetensors");
        switch (damage)
        {
            case "cut":
                File.WriteAllBytes(selfCheck, File.ReadAllBytes(selfCheck)[..4000]);
                break;
            case "fifo":
                File.Delete(selfCheck);
                using (var mkfifo = Process.Start("mkfifo", selfCheck))
                {
                    mkfifo.WaitForExit();
                }

                break;
            case "/dev/zero":
                EditManifest(model, m => m["export"]!["selfCheck"] = "/dev/zero");
                break;
            case "none":
                EditManifest(model, m => m["export"]!["selfCheck"] = "");
                break;
        }

        return model;
    }

    private static async Task<(HealthCheckResponse.Types.ServingStatus Status, RpcException Error)> AskAsync(ServerFactory server)
    {
        var health = new Health.HealthClient(server.Channel);
        var status = await health.CheckAsync(new HealthCheckRequest(), deadline: Limits.Deadline);
        var error = await Assert.ThrowsAsync<RpcException>(async () => await server.Client.GetModelInfoAsync(new GetModelInfoRequest(), deadline: Limits.Deadline));
        return (status.Status, error);
    }

    private static void EditManifest(string folder, Action<JsonNode> edit)
    {
        var file = Path.Combine(folder, ModelManifest.FileName);
        var json = JsonNode.Parse(File.ReadAllText(file))!;
        edit(json);
        File.WriteAllText(file, json.ToJsonString());
    }
}
