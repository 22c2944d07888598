"""tegrastats lines from several Jetson generations parse into rails, loads and temperatures."""

from __future__ import annotations

import pytest

from edge_fer.bench.tegrastats import parse_line, summarize

# Lines in the formats tegrastats prints (JetPack 6 Orin Nano, JetPack 5 AGX Orin, JetPack 4 Xavier NX and Nano).
ORIN_NANO = ("11-29-2026 10:00:00 RAM 2448/7620MB (lfb 4x4MB) SWAP 0/3810MB (cached 0MB) CPU [3%@729,1%@729,off,off] "
             "EMC_FREQ 0%@2133 GR3D_FREQ 47%@[624] cpu@47.5C soc2@45.1C gpu@46.8C cv0@-256C tj@47.5C "
             "VDD_IN 6213mW/5120mW VDD_CPU_GPU_CV 1820mW/1203mW VDD_SOC 1611mW/1443mW")
AGX_ORIN = ("RAM 2448/30536MB (lfb 6484x4MB) SWAP 0/15268MB (cached 0MB) CPU [1%@729,0%@729,2%@729,1%@729] "
            "GR3D_FREQ 0%@[305,305] CPU@45.218C Tboard@33C GPU@-256C tj@45.218C VDD_GPU_SOC 3987mW/3987mW "
            "VDD_CPU_CV 797mW/797mW VIN_SYS_5V0 3726mW/3726mW")
XAVIER_NX = ("RAM 1903/7765MB (lfb 1x4MB) SWAP 0/3883MB (cached 0MB) CPU [10%@1190,5%@1190,off,off,off,off] "
             "EMC_FREQ 0% GR3D_FREQ 12% AUX@36.5C CPU@38C thermal@37.25C VDD_IN 4963/4963 VDD_CPU_GPU_CV 1224/1224 "
             "VDD_SOC 1469/1469")
NANO = ("RAM 1500/3964MB (lfb 200x4MB) IRAM 0/252kB(lfb 252kB) CPU [12%@1479,4%@1479,3%@1479,2%@1479] "
        "GR3D_FREQ 99%@921 PLL@31C CPU@33.5C GPU@32C POM_5V_IN 4416/3620 POM_5V_GPU 1981/1170 POM_5V_CPU 624/592")


@pytest.mark.parametrize("line, total, gpu, cpu, hottest", [
    (ORIN_NANO, 6213.0, 47.0, 2.0, 47.5),
    (AGX_ORIN, 3987.0 + 797.0 + 3726.0, 0.0, 1.0, 45.218),  # no input rail on AGX Orin: rails summed
    (XAVIER_NX, 4963.0, 12.0, 7.5, 38.0),  # JetPack 4: no mW unit
    (NANO, 4416.0, 99.0, 5.25, 33.5),
])
def test_lines_from_each_generation(line, total, gpu, cpu, hottest):
    sample = parse_line(line)
    assert sample.total_mw == total
    assert sample.gpu_load_pct == gpu and sample.cpu_load_pct == pytest.approx(cpu)
    assert "RAM" not in sample.rails_mw and "SWAP" not in sample.rails_mw
    assert max(sample.temps_c.values()) == hottest and -256.0 not in sample.temps_c.values()


def test_energy_per_image_integrates_power_over_the_window():
    samples = [parse_line(ORIN_NANO), parse_line(ORIN_NANO.replace("VDD_IN 6213mW", "VDD_IN 5787mW"))]
    out = summarize(samples, seconds=2.0, images=400)
    assert out["power_mw"] == 6000.0
    assert out["energy_mj_per_image"] == 6000.0 * 2.0 / 400  # mW x s = mJ
    assert out["gpu_load_pct"] == 47.0 and out["max_temp_c"] == 47.5
    assert "power_mw" not in summarize([], 1.0, 10)  # no samples: no made-up figure


# Thor (JetPack 7): the board input is VIN; the other rails are parts of it (per NVIDIA's Thor rail names).
THOR = ("RAM 8721/125772MB (lfb 2x4MB) SWAP 0/0MB (cached 0MB) CPU [5%@2601,3%@2601,0%@2601,1%@2601] "
        "GR3D_FREQ 35% cpu@41.2C tj@43.8C VDD_GPU 9210mW/9010mW VDD_CPU_SOC_MSS 6120mW/6000mW "
        "VIN_SYS_5V0 4010mW/4000mW VIN 31220mW/30980mW")
# Xavier NX / Nano on JetPack 4: PMIC@100C is a constant, not a sensor reading
XAVIER_PMIC = XAVIER_NX.replace("thermal@37.25C", "thermal@37.25C PMIC@100C")


def test_thor_total_is_vin_not_a_sum_of_its_parts():
    assert parse_line(THOR).total_mw == 31220.0


def test_fixed_pmic_reading_is_not_a_temperature():
    sample = parse_line(XAVIER_PMIC)
    assert "PMIC" not in sample.temps_c and max(sample.temps_c.values()) == 38.0
    assert summarize([sample], 1.0, 1)["max_temp_c"] == 38.0
