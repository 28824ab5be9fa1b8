using VideoMatch.Engine.Inference;

namespace VideoMatch.Engine.Tests.Inference;

public sealed class OrtSessionsTests
{
    [Fact]
    public void CudaProviderOptions_Defaults_ExhaustiveSearchNoLimit()
    {
        var settings = OrtSessions.CudaProviderOptions(new InferenceOptions { ExecutionProvider = "cuda" });

        Assert.Equal("0", settings["device_id"]);
        Assert.Equal("EXHAUSTIVE", settings["cudnn_conv_algo_search"]);
        Assert.Equal("0", settings["prefer_nhwc"]);
        Assert.False(settings.ContainsKey("gpu_mem_limit"));
    }

    [Fact]
    public void CudaProviderOptions_Set_MapsToOnnxRuntimeNamesAndUnits()
    {
        var options = new InferenceOptions { ExecutionProvider = "cuda", DeviceId = 2, GpuMemoryLimitMb = 4096, CudnnConvAlgoSearch = "heuristic", PreferNhwc = true };

        var settings = OrtSessions.CudaProviderOptions(options);

        Assert.Equal("2", settings["device_id"]);
        Assert.Equal("HEURISTIC", settings["cudnn_conv_algo_search"]);
        Assert.Equal("1", settings["prefer_nhwc"]);
        Assert.Equal((4096L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), settings["gpu_mem_limit"]);
    }
}
